"""The account policy: who logs in, who gets an account created on first login.

Independent of any wire protocol, so the dict front-end (Dovecot 2.3 passdb)
and a later HTTP front-end (Dovecot 2.4 Lua passdb) share it. Everything here
is synchronous and may block (store I/O, hashing): front-ends run it in their
thread pool. Refusals are values (`Refusal`), turned into wire replies at the
edge. Passwords never reach a log line.
"""

import enum
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from passlib.hash import sha512_crypt

from ..core.addresses import address_refusal
from ..core.store import AccountDamaged, Accounts

# The chatmail layout stores SHA512-CRYPT with glibc's default 5000 rounds
# (a `$6$salt$hash` without `rounds=`), as Dovecot and existing relays expect.
_HASHER = sha512_crypt.using(rounds=5000)
_LOCALPART = re.compile(r"^[a-z0-9._-]+$")


def hash_password(password: str) -> str:
    return "{SHA512-CRYPT}" + _HASHER.hash(password)


class Refusal(enum.Enum):
    """Why a login or an account creation was refused (also the metrics label)."""

    BAD_ADDRESS = "bad_address"
    FOREIGN_DOMAIN = "foreign_domain"
    LOCALPART_LENGTH = "localpart_length"
    LOCALPART_CHARS = "localpart_chars"
    PASSWORD_LENGTH = "password_length"
    REGISTRATION_CLOSED = "registration_closed"
    HIGH_LOAD = "high_load"
    LOW_MEMORY = "low_memory"
    LOW_DISK = "low_disk"
    ACCOUNT_DAMAGED = "account_damaged"


class ResourceProbe:
    """The machine's state, read fresh on each account creation."""

    def __init__(self, mailboxes_dir):
        self.mailboxes_dir = Path(mailboxes_dir)

    def load_1m(self) -> float:
        return os.getloadavg()[0]

    def available_memory(self) -> int:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
        return 0

    def free_disk(self) -> int:
        path = self.mailboxes_dir
        while not path.exists() and path != path.parent:
            path = path.parent
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize


@dataclass(frozen=True)
class PassdbResult:
    """A passdb answer: `fields` for Dovecot, or a refusal."""

    fields: Optional[dict] = None
    refusal: Optional[Refusal] = None
    created: bool = False


class AccountPolicy:
    def __init__(self, config, accounts: Accounts, probe: Optional[ResourceProbe] = None,
                 hasher: Callable[[str], str] = hash_password,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.policy = config.doveauth
        self.accounts = accounts
        self.probe = probe or ResourceProbe(config.mailboxes_dir)
        self.hasher = hasher
        self.clock = clock

    def userdb_fields(self, addr: str) -> dict:
        return {"home": str(self.config.mailboxes_path / addr),
                "uid": self.policy.uid, "gid": self.policy.gid}

    def find(self, addr: str) -> Optional[PassdbResult]:
        """The answer that needs no new account, or None when one may be created.

        Cheap (no hashing): front-ends run it apart from `create`, so lookups
        of existing accounts never wait behind a burst of creations.
        """
        refused = address_refusal(addr, self.config.mail_domain)
        if refused is not None:
            return PassdbResult(refusal=Refusal(refused.reason))
        try:
            stored = self.accounts.get_password(addr)
        except AccountDamaged:
            return PassdbResult(refusal=Refusal.ACCOUNT_DAMAGED)
        if stored is None:
            return None
        return PassdbResult(fields=dict(self.userdb_fields(addr), password=stored))

    def create(self, addr: str, password: str) -> PassdbResult:
        """Create the account of a checked, unknown address if admission allows."""
        refusal = self.admission(addr, password)
        if refusal is not None:
            return PassdbResult(refusal=refusal)
        # Hash first, then create: under concurrent first logins the store
        # keeps exactly one hash and returns it to every caller.
        stored = self.accounts.create_account(addr, self.hasher(password), self.clock())
        return PassdbResult(fields=dict(self.userdb_fields(addr), password=stored),
                            created=True)

    def userdb(self, addr: str) -> Optional[dict]:
        if address_refusal(addr, self.config.mail_domain) is not None:
            return None
        try:
            if self.accounts.get_password(addr) is None:
                return None
        except AccountDamaged:
            return None
        return self.userdb_fields(addr)

    def users(self) -> Iterator[str]:
        return self.accounts.iter_accounts()

    def admission(self, addr: str, password: str) -> Optional[Refusal]:
        """Why a new account may not be created now, or None. Cheapest checks first."""
        localpart = addr.rpartition("@")[0]
        p = self.policy
        if not p.username_min_length <= len(localpart) <= p.username_max_length:
            return Refusal.LOCALPART_LENGTH
        if not _LOCALPART.match(localpart):
            return Refusal.LOCALPART_CHARS
        if len(password) < p.password_min_length:
            return Refusal.PASSWORD_LENGTH
        if os.path.exists(p.nocreate_file):
            return Refusal.REGISTRATION_CLOSED
        return self._resources()

    def _resources(self) -> Optional[Refusal]:
        p = self.policy
        if self.probe.load_1m() > p.max_load_1m:
            return Refusal.HIGH_LOAD
        if self.probe.available_memory() < p.min_available_memory:
            return Refusal.LOW_MEMORY
        if self.probe.free_disk() < p.min_free_disk_space:
            return Refusal.LOW_DISK
        return None
