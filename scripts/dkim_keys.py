"""Fresh DKIM keys for tests: PEM files to sign with, TXT records to publish."""

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def make_dkim_key(directory: Path, kind: str, name: str):
    """Write `<name>.pem` (RSA 2048 or Ed25519) and return (path, TXT record bytes)."""
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
    path = Path(directory) / f"{name}.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    record = f"v=DKIM1; k={kind}; p={base64.b64encode(public).decode()}".encode()
    return path, record
