"""The store every daemon shares; `open_store(config)` picks the backend.

The Redis backend is imported only when `storage` is a redis URL, so a
relay on the embedded files store never needs the redis package.
"""

from .base import (
    AccountDamaged, PendingNotification, PushItem, Store, StoreError, StoreUnavailable, day_of,
)

__all__ = ["AccountDamaged", "PendingNotification", "PushItem", "Store", "StoreError",
           "StoreUnavailable", "day_of", "open_store"]


def open_store(config) -> Store:
    if config.storage == "files":
        from .files import FilesStore

        return FilesStore(config.mailboxes_dir, config.mail_domain)
    try:
        from .redis import RedisStore
    except ImportError as e:
        raise StoreError(f"storage {config.storage!r} is not available: {e}") from None
    return RedisStore.from_config(config)
