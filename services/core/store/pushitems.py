"""The push queue's items, and their JSON form: one definition for every backend.

A queued notification is stored as JSON
`{"addr", "token", "deadline", "attempts", "queued_at"}` (one file per item
in the files store, one hash field per item in Redis); `encode_item` and
`decode_item` are the only places that write and read it.
"""

import json
from dataclasses import dataclass
from typing import Optional

DECODE_ERRORS = (ValueError, KeyError, TypeError)  # what a damaged item raises


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


def encode_item(item: PushItem, attempts: Optional[int] = None) -> str:
    """The stored JSON of `item` (with `attempts` instead of its own, if given)."""
    return json.dumps({"addr": item.addr, "token": item.token, "deadline": item.deadline,
                       "attempts": item.attempts if attempts is None else attempts,
                       "queued_at": item.queued_at})


def decode_item(ident: str, raw) -> PushItem:
    """The item stored as `raw` (str or bytes) under `ident`; DECODE_ERRORS if damaged."""
    data = json.loads(raw)
    return PushItem(ident, str(data["addr"]), str(data["token"]), float(data["deadline"]),
                    int(data["attempts"]), float(data.get("queued_at", 0)))


def push_ident(item_id: str) -> str:
    """The part of a push item's id that stays the same across claims and stores."""
    return item_id.partition(".")[2] or item_id
