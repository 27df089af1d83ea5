"""The store interface: the state every daemon shares, behind one small ABC.

Methods are synchronous and may block (disk, network); daemons call them from
their thread pool, never from the reactor thread. Implementations must be
safe to call from several threads and several processes at once.

Addresses reaching a store have been checked by `addresses.check_address`;
stores check again before an address becomes a path or a key.
"""

import abc
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple


class StoreError(Exception):
    """The store cannot answer now (I/O error, backend down): a temporary failure."""


class StoreUnavailable(StoreError):
    """The backend is unreachable (e.g. Redis down).

    The store logs the outage once, when it begins and when it ends; callers
    answer a temporary failure without logging each request again.
    """


class AccountDamaged(StoreError):
    """An account exists but its record is unusable (e.g. an empty password file).

    It must never be treated as 'no account', or anyone could claim the address.
    """


@dataclass(frozen=True)
class PushItem:
    """One pending push notification: `token` of `addr`, as the queue holds it.

    `id` is an opaque handle that is valid until the item is rescheduled or
    completed (a backend may change it on every claim). `deadline` is the
    absolute unix time after which the notification is worthless, fixed when
    the item was first enqueued; `attempts` counts the failed POSTs so far.
    """

    id: str
    addr: str
    token: str
    deadline: float
    attempts: int = 0
    queued_at: float = 0.0


@dataclass(frozen=True)
class PendingNotification:
    """One queued push notification; its device token is never exposed here."""

    id: str
    addr: str
    queued_at: int


class Store(abc.ABC):
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
    def import_account(self, addr: str, password_hash: str, last_login_day: int,
                       enforce_e2ee: bool) -> bool:
        """Create an account with a given state (for migration); False if it exists.

        Atomic like `create_account`; an existing account is left untouched.
        """

    @abc.abstractmethod
    def iter_accounts(self) -> Iterator[str]:
        """Every existing account address, streamed."""

    @abc.abstractmethod
    def get_last_login(self, addr: str) -> Optional[int]:
        """The last-login day (unix time of UTC midnight), None without an account."""

    @abc.abstractmethod
    def set_last_login(self, addr: str, day: int) -> bool:
        """Record the login day; write only when it changed. False without an account."""

    @abc.abstractmethod
    def enforces_e2ee_incoming(self, addr: str) -> bool:
        """Whether cleartext mail to this account is refused."""

    # -- push device tokens (IMAP METADATA /private/devicetoken) ----------
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

    # -- the persistent push queue ----------------------------------------
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

    def delete_account(self, addr: str) -> bool:
        """Delete an account and everything that belongs to it: its record, its
        home `<mailboxes_dir>/<addr>` (mail, metadata.json with the push tokens)
        and its pending notifications. True if there was something to delete.

        Not abstract so that a backend written before it still loads; every
        backend must implement it (chatmailctl and chatmail-expire call it).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot delete accounts")

    def delete_accounts(self, addrs: Iterable[str]) -> int:
        """Delete several accounts (see delete_account); how many existed.

        Backends override it when a batch is cheaper than one call per address
        (the files store reads its notification queue once per batch).
        """
        return sum(1 for addr in addrs if self.delete_account(addr))

    def iter_pending_notifications(self) -> Iterator[PendingNotification]:
        """The persistent push notification queue, streamed, in no order."""
        raise NotImplementedError(f"{type(self).__name__} has no notification queue")

    # -- filtermail's per-sender send rate limit (core/gcra.py) -------------
    def check_send_rate(self, sender: str, now: float, per_minute: float,
                        burst: int) -> Tuple[bool, float]:
        """Count one message of `sender` (case-insensitive) at `now` against the
        GCRA limit of `burst` at once, then `per_minute`: (allowed, seconds
        until a retry would pass; 0.0 when allowed). Atomic across every caller
        that shares the store's state; a refused message changes nothing.

        Not abstract so that a backend written before it still loads; every
        backend must implement it (chatmail-filtermail outgoing calls it).
        """
        raise NotImplementedError(f"{type(self).__name__} has no send rate limit")

    # -- for migration between backends (store/migrate.py) only -------------
    def token_times(self, addr: str) -> Dict[str, float]:
        """Every stored token of `addr` with its last-set time, expired ones too."""
        raise NotImplementedError(f"{type(self).__name__} cannot export tokens")

    def export_push(self) -> Iterator[PushItem]:
        """Every queued item with its token, claimed or not, without claiming it.
        Only for copying the queue to another store: never log what it yields."""
        raise NotImplementedError(f"{type(self).__name__} cannot export its push queue")

    def import_push(self, items: Iterable[PushItem], due: float) -> int:
        """Queue copies of another store's items, due at `due`, keeping deadline,
        attempts and queued_at; an item whose id (its part after the first dot,
        if any) is already queued, or whose account does not exist, is skipped.
        Returns how many were queued."""
        raise NotImplementedError(f"{type(self).__name__} cannot import a push queue")

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and handles."""


def day_of(timestamp: float) -> int:
    """The unix time of the UTC midnight that starts the day of `timestamp`."""
    return int(timestamp) // 86400 * 86400


def push_ident(item_id: str) -> str:
    """The part of a push item's id that stays the same across claims and stores."""
    return item_id.partition(".")[2] or item_id
