"""The store interface: the state every daemon shares, behind one small ABC.

Methods are synchronous and may block (disk, network); daemons call them from
their thread pool, never from the reactor thread. Implementations must be
safe to call from several threads and several processes at once.

Addresses reaching a store have been checked by `addresses.check_address`;
stores check again before an address becomes a path or a key.
"""

import abc
from typing import Iterator, Optional


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

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and handles."""


def day_of(timestamp: float) -> int:
    """The unix time of the UTC midnight that starts the day of `timestamp`."""
    return int(timestamp) // 86400 * 86400
