"""Account homes `<mailboxes_dir>/<addr>`: deleting one without a half-deleted state.

Every backend keeps an account's mail (and, on the files store, its record)
in its home. Deleting an account renames the home out of sight first (a
tombstone), so a login racing with the deletion never finds a half-deleted
account with old mail; the tombstone is removed after the record is gone.
"""

import os
import secrets
import shutil
from pathlib import Path
from typing import Optional

from .errors import StoreError

TOMBSTONE_PREFIX = ".deleting-"


def hide_home(root: Path, home: Path) -> Optional[Path]:
    """Rename an account's home out of sight (a tombstone); None if there is none."""
    tombstone = root / f"{TOMBSTONE_PREFIX}{secrets.token_hex(8)}"
    try:
        os.rename(home, tombstone)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"cannot delete account: {e.strerror}") from None
    return tombstone


def remove_tombstone(tombstone: Path) -> None:
    try:
        shutil.rmtree(tombstone)
    except OSError as e:
        raise StoreError(f"account deleted, its files not: {tombstone}: {e.strerror}") from None


def remove_home(root: Path, home: Path) -> bool:
    """Delete an account's home: hidden first, so no login finds it half-deleted."""
    tombstone = hide_home(root, home)
    if tombstone is None:
        return False
    remove_tombstone(tombstone)
    return True
