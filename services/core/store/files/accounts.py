"""The files backend's Accounts: chatmail's on-disk layout, byte-compatible with
existing relays (docs/storage.md).

An account is created by `link()`, which fails if the password file exists,
so of concurrent first logins exactly one wins, across threads and
processes. The last-login day is the password file's mtime. An account is
deleted by hiding its home first (store/homes.py).
"""

import os
from typing import Iterator, Optional

from ...days import day_of
from ..errors import StoreError
from ..homes import remove_home
from ..roles import Accounts
from .layout import ENFORCE_E2EE, PASSWORD, Layout, fsync_dir, write_durable_temp


class FilesAccounts(Accounts):
    def __init__(self, layout: Layout, queue):
        self.layout = layout
        self.queue = queue  # its notifications go with a deleted account

    def get_password(self, addr: str) -> Optional[str]:
        return self.layout.read_password(addr)

    def create_account(self, addr: str, password_hash: str, now: float) -> str:
        existing = self.get_password(addr)
        if existing is not None:
            return existing
        self.create(addr, password_hash, day_of(now), enforce_e2ee=True)
        return self.get_password(addr)

    def create(self, addr: str, password_hash: str, day: int, enforce_e2ee: bool) -> bool:
        """Link a password file into place unless one exists; True if ours won."""
        home = self.layout.home(addr)
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
            fsync_dir(home)
        except OSError as e:
            raise StoreError(f"cannot create account: {e.strerror}") from None
        return won

    def iter_accounts(self) -> Iterator[str]:
        """Directories named like an address that hold a password file."""
        try:
            entries = os.scandir(self.layout.root)
        except FileNotFoundError:
            return
        with entries:
            for entry in entries:
                if "@" in entry.name and os.path.exists(
                        os.path.join(entry.path, PASSWORD)):
                    yield entry.name

    def get_last_login(self, addr: str) -> Optional[int]:
        try:
            return int(os.stat(self.layout.password_path(addr)).st_mtime)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"cannot read last login: {e.strerror}") from None

    def set_last_login(self, addr: str, day: int) -> bool:
        path = self.layout.password_file(addr)
        try:
            if int(path.stat().st_mtime) != day:
                os.utime(path, (day, day))
        except FileNotFoundError:
            return False
        except OSError as e:
            raise StoreError(f"cannot record last login: {e.strerror}") from None
        return True

    def enforces_e2ee_incoming(self, addr: str) -> bool:
        return (self.layout.home(addr) / ENFORCE_E2EE).exists()

    def delete_account(self, addr: str) -> bool:
        return self.delete_accounts([addr]) == 1

    def delete_accounts(self, addrs) -> int:
        addrs = set(addrs)
        homes = [self.layout.home(addr) for addr in addrs]  # checks every address first
        deleted = sum(1 for home in homes if remove_home(self.layout.root, home))
        self.queue.purge(addrs)
        return deleted
