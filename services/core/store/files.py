"""The embedded store: chatmail's on-disk layout, byte-compatible with existing relays.

    <mailboxes_dir>/<addr>/password              {SHA512-CRYPT}$6$...  (ASCII, no newline)
                                                 its mtime is the last-login day (UTC midnight)
    <mailboxes_dir>/<addr>/enforceE2EEincoming   present = incoming cleartext refused
    <mailboxes_dir>/<addr>/metadata.json,
    <mailboxes_dir>/pending_notifications/       push tokens and queue (see filespush)

Every write is crash-safe: data goes to a temporary file that is fsynced and
then linked or renamed into place, and the directory is fsynced after. An
account is created by `link()`, which fails if the password file exists, so
of concurrent first logins exactly one wins, across threads and processes.
An account is deleted by renaming its home out of sight first, so a login
racing with the deletion never finds a half-deleted account with old mail.
The send rate limit is not on disk: it lives in the memory of the process
(core/gcra.py `RateLimiter`), as before there was a Redis store.
"""

import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator, Optional

from ..addresses import BadAddress, check_address
from ..gcra import RateLimiter
from .base import AccountDamaged, Store, StoreError, day_of
from .filespush import FilesPushMixin

PASSWORD = "password"
ENFORCE_E2EE = "enforceE2EEincoming"
PENDING_NOTIFICATIONS = "pending_notifications"
TOMBSTONE_PREFIX = ".deleting-"


def _fsync_dir(path: Path) -> None:
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
    _fsync_dir(path.parent)


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


class FilesStore(FilesPushMixin, Store):
    _write_temp = staticmethod(write_durable_temp)
    _replace = staticmethod(replace_durable)
    _fsync_dir = staticmethod(_fsync_dir)

    def __init__(self, mailboxes_dir, mail_domain: str):
        self.root = Path(mailboxes_dir)
        self.mail_domain = mail_domain
        self._limiters = {}  # (per_minute, burst) -> RateLimiter, in this process only

    def account_dir(self, addr: str) -> Path:
        try:
            check_address(addr, self.mail_domain)
        except BadAddress as e:
            raise ValueError(f"refusing to use address as a path: {e}") from None
        return self.root / addr

    def get_password(self, addr: str) -> Optional[str]:
        path = self.account_dir(addr) / PASSWORD
        try:
            data = path.read_bytes()
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

    def create_account(self, addr: str, password_hash: str, now: float) -> str:
        existing = self.get_password(addr)
        if existing is not None:
            return existing
        self._create(addr, password_hash, day_of(now), enforce_e2ee=True)
        return self.get_password(addr)

    def import_account(self, addr: str, password_hash: str, last_login_day: int,
                       enforce_e2ee: bool) -> bool:
        if self.get_password(addr) is not None:
            return False
        return self._create(addr, password_hash, last_login_day, enforce_e2ee)

    def _create(self, addr: str, password_hash: str, day: int, enforce_e2ee: bool) -> bool:
        """Link a password file into place unless one exists; True if ours won."""
        home = self.account_dir(addr)
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            flag = home / ENFORCE_E2EE
            if enforce_e2ee and not flag.exists():
                os.replace(write_durable_temp(home, b""), flag)
            tmp = write_durable_temp(home, password_hash.encode("ascii"), mtime=day)
            try:
                os.link(tmp, home / PASSWORD)
                won = True
            except FileExistsError:
                won = False  # another login created it first: that one wins
            finally:
                tmp.unlink()
            _fsync_dir(home)
        except OSError as e:
            raise StoreError(f"cannot create account: {e.strerror}") from None
        return won

    def iter_accounts(self) -> Iterator[str]:
        try:
            entries = os.scandir(self.root)
        except FileNotFoundError:
            return
        with entries:
            for entry in entries:
                if "@" in entry.name and os.path.exists(
                        os.path.join(entry.path, PASSWORD)):
                    yield entry.name

    def get_last_login(self, addr: str) -> Optional[int]:
        try:
            return int((self.account_dir(addr) / PASSWORD).stat().st_mtime)
        except FileNotFoundError:
            return None

    def set_last_login(self, addr: str, day: int) -> bool:
        path = self.account_dir(addr) / PASSWORD
        try:
            if int(path.stat().st_mtime) != day:
                os.utime(path, (day, day))
        except FileNotFoundError:
            return False
        except OSError as e:
            raise StoreError(f"cannot record last login: {e.strerror}") from None
        return True

    def enforces_e2ee_incoming(self, addr: str) -> bool:
        return (self.account_dir(addr) / ENFORCE_E2EE).exists()

    def delete_account(self, addr: str) -> bool:
        return self.delete_accounts([addr]) == 1

    def delete_accounts(self, addrs) -> int:
        addrs = set(addrs)
        homes = [self.account_dir(addr) for addr in addrs]  # checks every address first
        deleted = sum(1 for home in homes if self._remove_home(home))
        self._purge_queue(addrs)
        return deleted

    def _remove_home(self, home: Path) -> bool:
        return remove_home(self.root, home)

    def check_send_rate(self, sender: str, now: float, per_minute: float, burst: int):
        """In this process's memory: one host has one outgoing filtermail, and
        a restart forgetting the buckets only grants one extra burst."""
        limiter = self._limiters.get((per_minute, burst))
        if limiter is None:  # a race makes two limiters, one of which is kept
            limiter = self._limiters.setdefault((per_minute, burst),
                                                RateLimiter(per_minute, burst))
        return limiter.check(sender, now)

    def close(self) -> None:
        pass
