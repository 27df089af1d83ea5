"""A DKIM signing key from PEM into dkimpy's format, in a child process.

`python3 -m chatmail_services.filtermail.pemkey FILE` prints the algorithm
on the first line and the key after it, or one line on stderr and exits 1.
It runs once at start-up (dkimcheck.load_signing_key), in a process of its
own, because the conversion needs cryptography, whose bindings would stay in
the filter's memory for good: 9 MiB of an idle outgoing filter
(bench/README.md, "Memory"). It imports nothing of the daemon.
"""

import sys


def convert(data: bytes):
    """(algorithm, key in dkimpy's format) of a PEM private key, RSA or Ed25519."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = serialization.load_pem_private_key(data, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return b"rsa-sha256", key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.TraditionalOpenSSL,
                                                serialization.NoEncryption())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        return b"ed25519-sha256", base64.b64encode(raw)
    raise ValueError("only RSA and Ed25519 keys can sign DKIM")


def main(argv) -> int:
    try:
        with open(argv[0], "rb") as f:
            algorithm, key = convert(f.read())
    except (OSError, ValueError, TypeError) as e:
        sys.stderr.write(f"{e}\n")
        return 1
    sys.stdout.buffer.write(algorithm + b"\n" + key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
