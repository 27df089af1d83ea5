"""The account policy: who logs in, who gets an account created on first login.

Independent of any wire protocol, so the dict front-end (Dovecot 2.3 passdb)
and a later HTTP front-end (Dovecot 2.4 Lua passdb) share it. Everything here
is synchronous and may block (store I/O, hashing): front-ends run it in their
thread pool; except `find` and `userdb`, which read through `reads` (the
store's hot-path reads, core/inline.py) and answer with a value or a Deferred.
Refusals are values (`Refusal`), turned into wire replies at the edge.
Passwords never reach a log line.
"""

import os
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from twisted.internet.defer import Deferred

from ..core.addresses import address_refusal
# The admission rules live in core: the web front's /new applies the same ones.
from ..core.admission import Admission, Refusal, ResourceProbe, hash_password  # noqa: F401
from ..core.store import AccountDamaged, Accounts


@dataclass(frozen=True)
class PassdbResult:
    """A passdb answer: `fields` for Dovecot, or a refusal."""

    fields: Optional[dict] = None
    refusal: Optional[Refusal] = None
    created: bool = False


DAMAGED = PassdbResult(refusal=Refusal.ACCOUNT_DAMAGED)


def _damaged(failure, answer):
    failure.trap(AccountDamaged)
    return answer


class AccountPolicy:
    def __init__(self, config, accounts: Accounts, probe: Optional[ResourceProbe] = None,
                 hasher: Callable[[str], str] = hash_password,
                 clock: Callable[[], float] = time.time, registration=None, reads=None):
        self.config = config
        self.policy = config.doveauth
        self.accounts = accounts
        self.reads = accounts if reads is None else reads  # `get_password`
        self.rules = Admission(config, registration, probe)
        self.hasher = hasher
        self.clock = clock
        # per lookup: a string, joined by hand (os.path.join is 25 times slower)
        self._mailboxes = os.path.join(str(config.mailboxes_path), "")

    def userdb_fields(self, addr: str) -> dict:
        # addr is a checked address (core/addresses.py): one path component
        return {"home": self._mailboxes + addr,
                "uid": self.policy.uid, "gid": self.policy.gid}

    def find(self, addr: str):
        """The answer that needs no new account, or None when one may be created
        (a value, or a Deferred when the read is one).

        Cheap (no hashing): front-ends run it apart from `create`, so lookups
        of existing accounts never wait behind a burst of creations.
        """
        refused = address_refusal(addr, self.config.mail_domain)
        if refused is not None:
            return PassdbResult(refusal=Refusal(refused.reason))
        return self._read(addr, self._found, DAMAGED)

    def _found(self, stored, addr):
        if stored is None:
            return None
        return PassdbResult(fields=dict(self.userdb_fields(addr), password=stored))

    def create(self, addr: str, password: str) -> PassdbResult:
        """Create the account of a checked, unknown address if admission allows."""
        prepared = self.prepare(addr, password)
        if isinstance(prepared, PassdbResult):
            return prepared
        return self.store_new(addr, prepared)

    # `create` in two steps, for two pools: `prepare` in the hashing threads,
    # which run at the lowest CPU priority; `store_new` at the daemon's own.
    # A thread at nice 19 that takes the GIL back after a system call may be
    # preempted holding it, and the reactor then waits for it: so the file or
    # Redis writes, a dozen system calls, are not made there.
    def prepare(self, addr: str, password: str):
        """The refusal (a PassdbResult), or the hash to store: admission, then hashing."""
        refusal = self.admission(addr, password)
        if refusal is not None:
            return PassdbResult(refusal=refusal)
        return self.hasher(password)

    def store_new(self, addr: str, hashed: str) -> PassdbResult:
        # Hash first, then create: under concurrent first logins the store
        # keeps exactly one hash and returns it to every caller.
        stored = self.accounts.create_account(addr, hashed, self.clock())
        return PassdbResult(fields=dict(self.userdb_fields(addr), password=stored),
                            created=True)

    def userdb(self, addr: str):
        """The userdb fields of an existing account, or None (value or Deferred)."""
        if address_refusal(addr, self.config.mail_domain) is not None:
            return None
        return self._read(addr, self._userdb_found, None)

    def _userdb_found(self, stored, addr):
        return None if stored is None else self.userdb_fields(addr)

    def _read(self, addr, found, damaged):
        """`found(stored hash, addr)` after the read; `damaged` for a damaged account."""
        try:
            stored = self.reads.get_password(addr)
        except AccountDamaged:
            return damaged
        if isinstance(stored, Deferred):
            return stored.addCallbacks(found, _damaged, (addr,), errbackArgs=(damaged,))
        return found(stored, addr)

    def users(self) -> Iterator[str]:
        return self.accounts.iter_accounts()

    def admission(self, addr: str, password: str) -> Optional[Refusal]:
        """Why a new account may not be created on first login now, or None;
        in the `invite` registration mode that is always a refusal."""
        return self.rules.check(addr, password)
