"""The state every daemon shares, split by role; `open_store(config)` picks the backend.

`open_store` returns a `Store` (roles.py) whose roles a daemon's main hands
to the parts that use them: `accounts`, `push`, `send_rate`, `transfer`.
Backends live in their own packages (files/, redis/) and never import each
other; what both need (homes.py, pushitems.py, errors.py) lives here. The
Redis backend is imported only when `storage` is a redis URL, so a relay on
the embedded files store never needs the redis package. Operator
documentation of both layouts: docs/storage.md.
"""

from .errors import AccountDamaged, StoreError, StoreUnavailable
from .pushitems import PendingNotification, PushItem
from .roles import Accounts, PushQueue, SendRate, Store, Transfer

__all__ = ["AccountDamaged", "Accounts", "PendingNotification", "PushItem", "PushQueue",
           "SendRate", "Store", "StoreError", "StoreUnavailable", "Transfer", "open_store"]


def open_store(config) -> Store:
    if config.storage == "files":
        from .files import open_files

        return open_files(config.mailboxes_dir, config.mail_domain, config.doveauth.uid)
    try:
        from .redis import open_redis
    except ImportError as e:
        raise StoreError(f"storage {config.storage!r} is not available: {e}") from None
    return open_redis(config)
