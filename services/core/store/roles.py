"""The store's roles: small interfaces, each daemon handed only those it uses.

    Accounts    doveauth, lastlogin, filtermail incoming (e2ee flag), expire, chatmailctl
    PushQueue   metadata (tokens, queue, notifier), chatmailctl (queue show)
    SendRate    filtermail outgoing
    Transfer    store/migrate.py (chatmailctl store migrate)
    Registration  doveauth, the web front, chatmailctl (registration.py)

`open_store(config)` returns a `Store`: one backend's roles over one shared
state. Methods are synchronous and may block (disk, network); daemons call
them from their thread pool. The reads on the daemons' hot paths come from
`Store.reactor_reads` instead, on the reactor thread (core/inline.py): the
files store's own methods, or the Redis backend's Deferred ones. Implementations
must be safe to call from several threads and several processes at once.
Every failure is a `StoreError` (store/errors.py), a `Temporary`.

Addresses reaching a store have been checked at the edge
(`addresses.address_refusal`); stores check again before an address becomes
a path or a key, and raise ValueError (`BadAddress`) for a bad one.
"""

import abc
from dataclasses import dataclass
from typing import (
    Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple,
)

from .pushitems import PendingNotification, PushItem
from .registration import Registration


class Accounts(abc.ABC):
    @abc.abstractmethod
    def get_password(self, addr: str) -> Optional[str]:
        """The stored `{SCHEME}hash` of an account, or None if there is no account."""

    @abc.abstractmethod
    def create_account(self, addr: str, password_hash: str, now: float) -> str:
        """Create the account unless it exists; return the hash that is stored.

        Atomic: of concurrent creations exactly one wins and every caller gets
        the winner's hash. The account is created with incoming cleartext
        refused (enforceE2EEincoming) before it becomes visible.
        """

    @abc.abstractmethod
    def iter_accounts(self) -> Iterator[str]:
        """Every existing account address, streamed: the one list of accounts."""

    @abc.abstractmethod
    def get_last_login(self, addr: str) -> Optional[int]:
        """The last-login day (unix time of UTC midnight), None without an account."""

    @abc.abstractmethod
    def set_last_login(self, addr: str, day: int) -> bool:
        """Record the login day; write only when it changed. False without an account."""

    @abc.abstractmethod
    def enforces_e2ee_incoming(self, addr: str) -> bool:
        """Whether cleartext mail to this account is refused."""

    @abc.abstractmethod
    def delete_account(self, addr: str) -> bool:
        """Delete an account and everything that belongs to it: its record, its
        home `<mailboxes_dir>/<addr>` (mail, metadata.json with the push tokens)
        and its pending notifications. True if there was something to delete."""

    def delete_accounts(self, addrs: Iterable[str]) -> int:
        """Delete several accounts (see delete_account); how many existed. Every
        address is checked before anything is deleted.

        Backends override it when a batch is cheaper than one call per address
        (the files store reads its notification queue once per batch).
        """
        return sum(1 for addr in addrs if self.delete_account(addr))


class PushQueue(abc.ABC):
    """Push device tokens (IMAP METADATA /private/devicetoken) and the
    persistent queue of notifications. Nothing is written for an address
    without an account: the role knows which accounts exist."""

    @abc.abstractmethod
    def get_tokens(self, addr: str, now: float, max_age: float) -> List[str]:
        """The tokens of `addr` set less than `max_age` seconds before `now`,
        newest first; [] without tokens or account. Tokens stamped in the
        future (the clock stepped back) count as fresh. Never writes."""

    @abc.abstractmethod
    def add_token(self, addr: str, token: str, now: float, max_age: float,
                  max_tokens: int) -> bool:
        """Add `token` (or refresh it) with last-set time `now`; atomically drop
        expired tokens and, beyond `max_tokens`, the oldest. Concurrent adds for
        one address all survive. False (nothing written) without an account."""

    @abc.abstractmethod
    def remove_token(self, addr: str, token: str) -> bool:
        """Remove one token; True if it was there. Creates nothing: without the
        token or the account this is a no-op."""

    @abc.abstractmethod
    def enqueue_push(self, addr: str, tokens: Sequence[str], now: float,
                     deadline: float) -> int:
        """Durably queue one item per token, due at `now` with `attempts` 0 and
        the absolute `deadline`; return how many were queued. When this returns
        the items survive a crash."""

    @abc.abstractmethod
    def claim_push(self, now: float, limit: int, lease: float
                   ) -> Tuple[List[PushItem], Optional[float]]:
        """Claim up to `limit` items due at `now` (earliest first): each one is
        hidden from every other claim until `now + lease`, after which it is due
        again (so a claimer that crashes loses nothing). Returns the claimed items
        and the earliest due time of the items left, or None if none are left."""

    @abc.abstractmethod
    def reschedule_push(self, item: PushItem, due: float, attempts: int) -> None:
        """Put a claimed item back, due at `due`, with its new attempt count."""

    @abc.abstractmethod
    def complete_push(self, item: PushItem) -> None:
        """Remove a claimed item for good (delivered, token gone, or dropped)."""

    def complete_pushes(self, items: Sequence[PushItem]) -> None:
        """`complete_push` for several items, each one tried; then the first
        failure is raised. A backend may do it in one round trip."""
        failure = None
        for item in items:
            try:
                self.complete_push(item)
            except Exception as e:
                failure = failure or e
        if failure is not None:
            raise failure

    @abc.abstractmethod
    def iter_pending_notifications(self) -> Iterator[PendingNotification]:
        """The persistent push notification queue, streamed, in no order."""


class SendRate(abc.ABC):
    """filtermail's per-sender send rate limit (the GCRA of core/gcra.py)."""

    # Whether check_send_rate may wait on I/O (a network store): filtermail then
    # calls it in its thread pool; a store that answers from memory, at once.
    blocking = True

    @abc.abstractmethod
    def check_send_rate(self, sender: str, now: float, per_minute: float,
                        burst: int) -> Tuple[bool, float]:
        """Count one message of `sender` (case-insensitive) at `now` against the
        GCRA limit of `burst` at once, then `per_minute`: (allowed, seconds
        until a retry would pass; 0.0 when allowed). Atomic across every caller
        that shares the state; a refused message changes nothing."""


class Transfer(abc.ABC):
    """Export and import of what Accounts and PushQueue do not hand out, for
    copying a relay between backends (store/migrate.py) and nothing else."""

    @abc.abstractmethod
    def import_account(self, addr: str, password_hash: str, last_login_day: int,
                       enforce_e2ee: bool) -> bool:
        """Create an account with a given state; False if it exists.

        Atomic like `create_account`; an existing account is left untouched.
        """

    @abc.abstractmethod
    def token_times(self, addr: str) -> Dict[str, float]:
        """Every stored token of `addr` with its last-set time, expired ones too."""

    @abc.abstractmethod
    def export_push(self) -> Iterator[PushItem]:
        """Every queued item with its token, claimed or not, without claiming it.
        Only for copying the queue to another store: never log what it yields."""

    @abc.abstractmethod
    def import_push(self, items: Iterable[PushItem], due: float) -> int:
        """Queue copies of another store's items, due at `due`, keeping deadline,
        attempts and queued_at; an item whose id (its part after the first dot,
        if any) is already queued, or whose account does not exist, is skipped.
        Returns how many were queued."""


class Reads(NamedTuple):
    """The reads of a daemon's hot paths: `accounts.get_password`,
    `accounts.get_last_login`, `push.get_tokens`, each answering with a value
    or a Deferred of it (the same answers and errors as the roles' methods)."""

    accounts: object
    push: object


@dataclass(frozen=True)
class Store:
    """One backend's roles over one shared state; `close()` releases it."""

    backend: str  # "files" or "redis", for messages
    accounts: Accounts
    push: PushQueue
    send_rate: SendRate
    transfer: Transfer
    registration: Registration
    closer: Callable[[], None] = lambda: None
    # `reactor_reads(reactor)`: the hot-path reads that may run on the reactor
    # thread without blocking it; None to read in a thread pool (core/inline.py).
    reactor_reads: Optional[Callable[[object], "Reads"]] = None

    def close(self) -> None:
        self.closer()
