"""The store interface: the state every daemon shares, behind one small ABC.

Methods are synchronous and may block (disk, network); daemons call them from
their thread pool, never from the reactor thread. Implementations must be
safe to call from several threads and several processes at once.

Addresses reaching a store have been checked by `addresses.check_address`;
stores check again before an address becomes a path or a key.
"""

import abc
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional


class StoreError(Exception):
    """The store cannot answer now (I/O error, backend down): a temporary failure."""


class AccountDamaged(StoreError):
    """An account exists but its record is unusable (e.g. an empty password file).

    It must never be treated as 'no account', or anyone could claim the address.
    """


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

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and handles."""


def day_of(timestamp: float) -> int:
    """The unix time of the UTC midnight that starts the day of `timestamp`."""
    return int(timestamp) // 86400 * 86400
