"""How a store fails: every store error is a `Temporary` (core/failures.py).

A daemon maps them to its wire once (dict `F`, SMTP `451 4.3.0`); the text
of a store error is for the operator's log, never for a client.
"""

from ..failures import Temporary


class StoreError(Temporary):
    """The store cannot answer now (I/O error, backend down): a temporary failure."""


class StoreUnavailable(StoreError):
    """The backend is unreachable (e.g. Redis down).

    The store logs the outage once, when it begins and when it ends
    (`logged`): callers answer a temporary failure without logging each
    request again.
    """

    logged = True


class AccountDamaged(StoreError):
    """An account exists but its record is unusable (e.g. an empty password file).

    It must never be treated as 'no account', or anyone could claim the address.
    """
