"""The Redis backend's Accounts: `<prefix>account:<addr>` and `<prefix>lastlogin:<addr>`.

Creating an account and recording a login are Lua scripts (scripts.py), so
of concurrent first logins on several hosts exactly one wins and the
enforceE2EEincoming flag is never later than the password. A last-login
record expires (docs/storage.md); an account whose record is gone reads as
last seen on day 0 (long ago). The account's mail stays in its home
`<mailboxes_dir>/<addr>` on the host that delivered it.
"""

from pathlib import Path
from typing import Iterator, Optional

from ...days import day_of
from ..errors import AccountDamaged
from ..homes import hide_home, remove_tombstone
from ..roles import Accounts
from .client import RedisConn

ENFORCE_E2EE = "enforceE2EEincoming"


def password_of(fields: dict) -> Optional[str]:
    """The stored hash from an account's hash fields; None when there are none."""
    if not fields:
        return None
    password = fields.get("password", "")
    if not password.startswith("{"):
        raise AccountDamaged("account has no usable password hash")
    return password


def last_login_of(exists, day) -> Optional[int]:
    """The day from EXISTS of the account and GET of its record."""
    if not exists:
        return None
    return 0 if day is None else int(day)


class RedisAccounts(Accounts):
    def __init__(self, conn: RedisConn, last_login_ttl: int, mailboxes_dir=None):
        self.conn = conn
        self.keys = conn.keys
        self.last_login_ttl = last_login_ttl
        self.mailboxes_dir = None if mailboxes_dir is None else Path(mailboxes_dir)

    def get_password(self, addr: str) -> Optional[str]:
        key = self.keys.account(self.conn.check(addr))
        with self.conn.guard() as r:
            return password_of(r.hgetall(key))

    def create_account(self, addr: str, password_hash: str, now: float) -> str:
        return self.create(addr, password_hash, day_of(now), True)[1]

    def create(self, addr, password_hash, day, enforce_e2ee):
        """(created, stored hash): the account unless it exists, atomically."""
        addr = self.conn.check(addr)
        keys = [self.keys.account(addr), self.keys.last_login(addr)]
        args = [password_hash, day, day + self.last_login_ttl, "1" if enforce_e2ee else "0"]
        status, stored = self.conn.run("create_account", keys, args)
        if status == -1 or not stored.startswith("{"):
            raise AccountDamaged("account has no usable password hash")
        return status == 1, stored

    def iter_accounts(self) -> Iterator[str]:
        cut = len(self.keys.account(""))
        return (key[cut:] for key in self.conn.scan(self.keys.account_pattern()))

    def get_last_login(self, addr: str) -> Optional[int]:
        addr = self.conn.check(addr)
        with self.conn.guard() as r:
            pipe = r.pipeline(transaction=False)
            exists, day = pipe.exists(self.keys.account(addr)).get(
                self.keys.last_login(addr)).execute()
        return last_login_of(exists, day)

    def set_last_login(self, addr: str, day: int) -> bool:
        addr = self.conn.check(addr)
        keys = [self.keys.account(addr), self.keys.last_login(addr)]
        return bool(self.conn.run("set_last_login", keys, [day, day + self.last_login_ttl]))

    def enforces_e2ee_incoming(self, addr: str) -> bool:
        key = self.keys.account(self.conn.check(addr))
        with self.conn.guard() as r:
            return bool(r.hexists(key, ENFORCE_E2EE))

    def delete_account(self, addr: str) -> bool:
        """Hide its home on this host, remove its keys and queued notifications
        in one script, then remove the home."""
        addr = self.conn.check(addr)
        tombstone = None
        if self.mailboxes_dir is not None:
            tombstone = hide_home(self.mailboxes_dir, self.mailboxes_dir / addr)
        k = self.keys
        keys = [k.account(addr), k.last_login(addr), k.tokens(addr), k.queue_of(addr),
                k.queue_due(), k.queue_items()]
        existed = self.conn.run("delete_account", keys)
        if tombstone is not None:
            remove_tombstone(tombstone)
        return bool(existed) or tombstone is not None

    def delete_accounts(self, addrs) -> int:
        addrs = [self.conn.check(addr) for addr in set(addrs)]  # checks every address first
        return sum(1 for addr in addrs if self.delete_account(addr))
