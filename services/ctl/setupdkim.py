"""The DKIM signing key `chatmailctl setup` makes, and the DNS records it prints.

The key is filtermail.dkim.sign.key_file (default dkim/dkim.key next to
chatmail.yaml), RSA 2048 made with openssl, readable by vmail only (the
outgoing filter runs as vmail). An existing key is never replaced, and
`setup --undo` keeps it: its public half may already be in DNS.
"""

import base64
import os
import subprocess
from pathlib import Path

from .setupcompose import SetupError
from .setupstate import write_atomically, _ids


def key_path(root: Path, key_file: str) -> Path:
    """The key file inside `root` (paths already inside it are kept)."""
    key = Path(os.path.abspath(key_file))
    root = Path(os.path.abspath(root))
    if root == Path("/") or root in key.parents:
        return key
    return root / key.relative_to("/")


def ensure_key(path: Path) -> bool:
    """Make an RSA key at `path` unless one is there; True when made."""
    if path.exists():
        return False
    proc = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                           "-pkeyopt", "rsa_keygen_bits:2048"],
                          capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise SetupError(f"openssl genpkey: {proc.stderr.decode().strip()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, proc.stdout, 0o600, _ids("vmail", "vmail"))
    return True


def public_record(path: Path) -> str:
    """`v=DKIM1; k=rsa; p=...` for the key at `path` (Ed25519 keys: k=ed25519)."""
    proc = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
                          capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise SetupError(f"{path}: not a readable private key: "
                         f"{proc.stderr.decode().strip()}")
    der = proc.stdout
    if len(der) == 44:  # SubjectPublicKeyInfo of Ed25519: 12-byte header + 32-byte key
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(der[12:]).decode()}"
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def txt(value: str) -> str:
    """A TXT value in zone-file form: quoted strings of at most 255 characters."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def dns_records(domain: str, selector: str, record: str) -> list:
    return [
        f"{domain}.  A     <this server's IPv4 address>",
        f"{domain}.  AAAA  <this server's IPv6 address, if it has one>",
        f"{domain}.  MX    10 {domain}.",
        f'{domain}.  TXT   "v=spf1 a ~all"',
        f'_dmarc.{domain}.  TXT  "v=DMARC1;p=reject;adkim=s;aspf=s"',
        f"{selector}._domainkey.{domain}.  TXT  {txt(record)}",
    ]
