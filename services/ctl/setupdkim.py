"""The DKIM signing key `chatmailctl setup` makes (its record: dns.py).

The key is filtermail.dkim.sign.key_file (default dkim/dkim.key next to
chatmail.yaml), RSA 2048 made with openssl, readable by vmail only (the
outgoing filter runs as vmail). An existing key is never replaced, and
`setup --undo` keeps it: its public half may already be in DNS.
"""

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
