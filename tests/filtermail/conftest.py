"""Fixtures for filtermail: real OpenPGP messages (PGPy and GnuPG) and .eml templates.

Keys and messages are made once per session; every test sees the same bytes.
PGPy's messages need nothing but PGPy; GnuPG's need the `gpg` binary, and a
test that asks for them fails when it is missing (apt-get install gnupg):
it is never skipped.
"""

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # PGPy 0.6 touches ciphers that newer cryptography releases deprecate.
    warnings.simplefilter("ignore")
    import pgpy
    from pgpy.constants import (
        CompressionAlgorithm,
        EllipticCurveOID,
        HashAlgorithm,
        KeyFlags,
        PubKeyAlgorithm,
        SymmetricKeyAlgorithm,
    )

DATA = Path(__file__).parent / "data"
LARGE_PLAINTEXT_SIZE = 300_000  # enough for GnuPG to chunk the SEIPD in partial lengths


@pytest.fixture(scope="session")
def make_eml():
    """Fill a template from data/ and return SMTP-style CRLF message bytes."""

    def make(template, **fields):
        text = (DATA / f"{template}.eml").read_text().format(**fields)
        return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()

    return make


def _quietly(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _pgpy_key(name, primary, subkey=None):
    key = _quietly(pgpy.PGPKey.new, *primary)
    usage = {KeyFlags.Sign, KeyFlags.Certify}
    if subkey is None:
        usage |= {KeyFlags.EncryptCommunications, KeyFlags.EncryptStorage}
    key.add_uid(pgpy.PGPUID.new(name, email=f"{name}@example.org"), usage=usage,
                hashes=[HashAlgorithm.SHA256], ciphers=[SymmetricKeyAlgorithm.AES256],
                compression=[CompressionAlgorithm.Uncompressed])
    if subkey is not None:
        encryption = _quietly(pgpy.PGPKey.new, *subkey)
        key.add_subkey(encryption, usage={KeyFlags.EncryptCommunications,
                                          KeyFlags.EncryptStorage})
    return key


@pytest.fixture(scope="session")
def pgpy_keys():
    return {
        "rsa": _pgpy_key("rsa", (PubKeyAlgorithm.RSAEncryptOrSign, 2048)),
        "ecc": _pgpy_key("ecc", (PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519),
                         (PubKeyAlgorithm.ECDH, EllipticCurveOID.Curve25519)),
    }


def pgpy_encrypt(text, keys=(), passphrase=None):
    """Encrypt to every key and/or a passphrase under one session key; armored bytes."""
    cipher = SymmetricKeyAlgorithm.AES256
    session_key = cipher.gen_key()
    message = pgpy.PGPMessage.new(text)
    if passphrase is not None:
        message = _quietly(message.encrypt, passphrase, sessionkey=session_key,
                           cipher=cipher)
    for key in keys:
        message = _quietly(key.pubkey.encrypt, message, sessionkey=session_key,
                           cipher=cipher)
    return str(message).encode()


class GnuPG:
    """A throw-away GnuPG home with one passphrase-less key."""

    def __init__(self, home: Path, uid="bob <bob@example.org>"):
        self.home, self.uid = home, uid
        self.env = {**os.environ, "GNUPGHOME": str(home)}
        home.chmod(0o700)
        self.run("--passphrase", "", "--quick-gen-key", uid, "future-default",
                 "default", "never")

    def run(self, *args, stdin=b""):
        return subprocess.run(
            ["gpg", "--batch", "--pinentry-mode", "loopback", "--trust-model", "always",
             *args], input=stdin, env=self.env, capture_output=True, check=True).stdout

    def encrypt(self, plaintext: bytes, *args):
        """Armored message to the key, plaintext streamed through stdin."""
        return self.run("--armor", "--encrypt", "--recipient", self.uid, *args,
                        stdin=plaintext)

    def list_packets(self, message: bytes) -> str:
        return self.run("--list-packets", stdin=message).decode()

    def close(self):
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=self.env, check=False)


@pytest.fixture(scope="session")
def gnupg(tmp_path_factory):
    if shutil.which("gpg") is None:
        pytest.fail("gpg is not installed (apt-get install gnupg)", pytrace=False)
    gpg = GnuPG(tmp_path_factory.mktemp("gnupg"))
    yield gpg
    gpg.close()


@pytest.fixture(scope="session")
def pgpy_messages(pgpy_keys):
    """Real armored encrypted messages from PGPy, by name."""
    rsa, ecc = pgpy_keys["rsa"], pgpy_keys["ecc"]
    return {
        "pgpy-rsa": pgpy_encrypt("hello", [rsa]),
        "pgpy-curve25519": pgpy_encrypt("hello", [ecc]),
        "pgpy-two-recipients": pgpy_encrypt("hello", [rsa, ecc]),
        "pgpy-passphrase": pgpy_encrypt("hello", passphrase="secret"),
        "pgpy-passphrase-and-key": pgpy_encrypt("hello", [ecc], passphrase="secret"),
    }


@pytest.fixture(scope="session")
def gnupg_messages(gnupg):
    """Real armored encrypted messages from GnuPG, by name."""
    large = os.urandom(LARGE_PLAINTEXT_SIZE)
    return {
        "gnupg-small": gnupg.encrypt(b"hello\n"),
        "gnupg-large-partial-lengths": gnupg.encrypt(large),
        "gnupg-uncompressed": gnupg.encrypt(large, "--compress-algo", "none"),
        "gnupg-comment-header": gnupg.encrypt(b"hi\n", "--comment", "made by a test"),
        # --s2k-count: the least passphrase hashing GnuPG allows, instead of its
        # calibrated default (over a second here); the count is one byte of the
        # SKESK packet, whose body filtermail does not read
        "gnupg-symmetric": gnupg.run("--armor", "--symmetric", "--passphrase", "x",
                                     "--s2k-count", "65536", stdin=b"hello\n"),
    }


@pytest.fixture
def encrypted_message(request):
    """encrypted_message(name): one real message, asking GnuPG only for "gnupg-*"."""

    def get(name):
        tool = "gnupg" if name.startswith("gnupg-") else "pgpy"
        return request.getfixturevalue(f"{tool}_messages")[name]

    return get


@pytest.fixture(scope="session")
def armored(pgpy_messages):
    """One real encrypted message (curve25519, as Delta Chat uses)."""
    return pgpy_messages["pgpy-curve25519"]
