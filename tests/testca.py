"""Certificates for loopback TLS servers in the tests: a test CA, and its rogues.

`TestCA(directory)` writes its certificate to ``ca.pem`` (what a relay under
test is told to trust); `issue(name, *more)` makes a server certificate for
those DNS names signed by it, `self_signed(name)` one that no CA vouches for.
Each returns (cert file, key file), PEM, readable by Postfix's processes.
"""

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestCA:
    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self._build(_name("chatmail privacy test CA"), self.key, None, ca=True)
        self.ca_file = self._write("ca.pem", self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *more: str):
        """A certificate for the DNS names `name`, `more`, signed by this CA."""
        return self._leaf(name, [name, *more], signer=(self.cert.subject, self.key))

    def self_signed(self, name: str):
        return self._leaf(name, [name], signer=None)

    def _leaf(self, name, dns_names, signer):
        key = ec.generate_private_key(ec.SECP256R1())
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names])
        cert = self._build(_name(name), key, signer, ca=False, extension=san)
        stem = f"{name}-{'ca' if signer else 'self'}"
        pem = serialization.Encoding.PEM
        return (self._write(f"{stem}.crt", cert.public_bytes(pem)),
                self._write(f"{stem}.key", key.private_bytes(
                    pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())))

    def _build(self, subject, key, signer, ca, extension=None):
        issuer, sign_key = signer if signer else (subject, key)
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                                  critical=True)
                   # key identifiers: Python 3.13 verifies strictly (VERIFY_X509_STRICT)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       sign_key.public_key()), critical=False))
        if ca:  # strict verification also wants a CA's key usage
            builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False,
                                                          True, True, False, False),
                                            critical=True)
        if extension is not None:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(sign_key, hashes.SHA256())

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o644)
        return path
