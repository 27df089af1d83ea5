"""The files backend's layout and its crash-safe writes.

Every write is crash-safe: data goes to a temporary file that is fsynced and
then linked or renamed into place, and the directory is fsynced after.
The layout itself is described for operators in docs/storage.md.
"""

import os
import secrets
from pathlib import Path
from typing import Optional

from ...addresses import check_address
from ..errors import AccountDamaged, StoreError

PASSWORD = "password"
ENFORCE_E2EE = "enforceE2EEincoming"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable_temp(directory: Path, data: bytes, mtime: Optional[int] = None) -> Path:
    """Write `data` to a fresh temporary file in `directory`, fsynced; return its path."""
    tmp = directory / f".tmp.{os.getpid()}.{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    return tmp


def replace_durable(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data` (temp file, fsync, rename, fsync dir)."""
    tmp = write_durable_temp(path.parent, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_small(path: str, chunk: int = 4096) -> bytes:
    """A small file's bytes in three system calls (open, read, close) where
    Python's `open().read()` makes nine: on every login's and push's path."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts = [os.read(fd, chunk)]
        while len(parts[-1]) == chunk:  # not short: there may be more
            parts.append(os.read(fd, chunk))
    finally:
        os.close(fd)
    return b"".join(parts)


class Layout:
    """`<mailboxes_dir>` of one relay: where an account's files are."""

    def __init__(self, mailboxes_dir, mail_domain: str):
        self.root = Path(mailboxes_dir)
        self.mail_domain = mail_domain
        # for the per-login read: a string, not a Path, ending in "/"
        self._root_slash = os.path.join(str(self.root), "")

    def home(self, addr: str) -> Path:
        """`<mailboxes_dir>/<addr>`; ValueError (BadAddress) for an unsafe address."""
        return self.root / check_address(addr, self.mail_domain)

    def file_path(self, addr: str, name: str) -> str:
        """`<home>/<name>` as a string: on the per-login and per-push paths,
        cheaper than a Path; ValueError (BadAddress) for an unsafe address."""
        # joined by hand: os.path.join costs more than the checked name needs
        return self._root_slash + check_address(addr, self.mail_domain) + "/" + name

    def password_path(self, addr: str) -> str:
        return self.file_path(addr, PASSWORD)

    def password_file(self, addr: str) -> Path:
        return Path(self.password_path(addr))

    def read_password(self, addr: str) -> Optional[str]:
        """The stored hash, None without an account; AccountDamaged if unusable."""
        try:
            data = read_small(self.password_path(addr))
        except FileNotFoundError:
            return None
        except (PermissionError, IsADirectoryError) as e:
            # This account's file is unusable: refuse, never treat as absent.
            raise AccountDamaged(f"password file unreadable: {e.strerror}") from None
        except OSError as e:
            # The store itself is broken (I/O error, mailboxes_dir not a dir).
            raise StoreError(f"cannot read password file: {e.strerror}") from None
        try:
            text = data.decode("ascii").strip()
        except UnicodeDecodeError:
            text = ""
        if not text.startswith("{"):
            raise AccountDamaged("password file is empty or not a password hash")
        return text

    def is_account(self, addr: str) -> bool:
        """Whether `addr` has a usable account here (False for a bad or damaged one)."""
        try:
            return self.read_password(addr) is not None
        except (ValueError, StoreError):
            return False
