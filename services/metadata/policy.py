"""Push tokens and new-message notifications: the metadata daemon's domain.

Clients (Delta Chat) register a device's push token with IMAP
`SETMETADATA INBOX (/private/devicetoken "<token>")`; every device of an
address sets its own, so an address has a set of tokens. When Dovecot
delivers a message, its Lua script sets `/private/messagenew` and we queue
one notification per live token; the notifier forwards them.

Tokens are opaque to us (the notification service decides what they mean);
we only refuse what cannot be one: empty, too long, or containing
whitespace or control characters (the lookup answer is space-separated).

Methods block (disk, Redis): callers run them in the daemon's thread pool.
The store's `PushQueue` role holds tokens and queue; it writes nothing for
an address without an account.
"""

import enum
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from ..core.days import DAY
from ..core.store import PushQueue

_NOT_IN_TOKEN = re.compile(r"[\s\x00-\x1f\x7f]")


class Refusal(enum.Enum):
    EMPTY = "empty device token"
    TOO_LONG = "device token too long"
    BAD_CHARACTERS = "device token contains whitespace or control characters"
    NO_ACCOUNT = "no such account"


def check_token(token: str, max_length: int) -> Optional[Refusal]:
    """Why `token` cannot be a device token, or None if it may be one."""
    if not token:
        return Refusal.EMPTY
    if len(token.encode("utf-8", "surrogateescape")) > max_length:
        return Refusal.TOO_LONG
    if _NOT_IN_TOKEN.search(token):
        return Refusal.BAD_CHARACTERS
    return None


@dataclass(frozen=True)
class Op:
    """One change of a METADATA transaction: 'add' a token, 'clear' all, 'messagenew'."""

    kind: str
    token: str = ""


class PushPolicy:
    def __init__(self, settings, push: PushQueue):
        self.settings = settings  # the `metadata` config section
        self.store = push
        self.max_age = settings.token_max_age_days * DAY

    def tokens(self, addr: str, now: float):
        """The live tokens of `addr`, newest first."""
        return self.store.get_tokens(addr, now, self.max_age)

    def apply(self, addr: str, ops: Sequence[Op], now: float, live=None) -> int:
        """Apply a transaction's ops in order; return the notifications queued.
        `live`: the address's live tokens, when the caller has just read them
        and no op changes them (a delivery), so they are not read again."""
        queued = 0
        for op in ops:
            if op.kind == "add":
                if not self.store.add_token(addr, op.token, now, self.max_age,
                                            self.settings.max_tokens):
                    raise NoAccount(Refusal.NO_ACCOUNT.value)
            elif op.kind == "clear":
                for token in self.store.get_tokens(addr, now, float("inf")):
                    self.store.remove_token(addr, token)
            elif op.kind == "messagenew":
                queued += self.message_new(addr, now, live)
        return queued

    def message_new(self, addr: str, now: float, live=None) -> int:
        """Queue one notification per live token (`live`, else read now), to be
        sent before now + deadline."""
        deadline = now + self.settings.notify_deadline
        tokens = self.tokens(addr, now) if live is None else live
        return self.store.enqueue_push(addr, tokens, now, deadline)

    def token_gone(self, addr: str, token: str) -> bool:
        """The notification service says the token is dead (HTTP 410): forget it."""
        return self.store.remove_token(addr, token)


class NoAccount(Exception):
    """A token set for an address whose account directory does not exist."""
