"""What expiry deletes: pure decisions on ages and sizes, no I/O.

The rules are the reference relay's (chatmaild's expire.py and quota_expire.py),
with `now` passed in and every time a unix timestamp (UTC whatever the host's
time zone):

- an account whose last login is older than `delete_inactive_users_after` days
  goes with everything it has;
- a message older than `delete_mails_after` days goes, a large one (over
  200 kB) already after `delete_large_after` days;
- a mailbox whose messages add up to more than 70 % of `max_mailbox_size` is
  trimmed to that, oldest first;
- a message from the last 24 hours is never deleted by any of these rules.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..core.days import DAY
from ..core.maildir import Message

LARGE_MESSAGE = 200_000  # bytes, as the reference relay
QUOTA_TARGET = 0.7  # of max_mailbox_size
RECENT = DAY


@dataclass(frozen=True)
class Limits:
    """The cut-off times of one expiry run (unix seconds) and the quota target."""

    inactive_before: float
    old_before: float
    large_before: float
    recent_after: float
    quota_target: int

    @classmethod
    def at(cls, config, now: float) -> "Limits":
        e = config.expire
        return cls(inactive_before=now - e.delete_inactive_users_after * DAY,
                   old_before=now - e.delete_mails_after * DAY,
                   large_before=now - e.delete_large_after * DAY,
                   recent_after=now - RECENT,
                   quota_target=int(config.max_mailbox_size * QUOTA_TARGET))


def account_expired(last_login: Optional[float], limits: Limits) -> bool:
    return last_login is not None and last_login < limits.inactive_before


def message_reason(m: Message, limits: Limits) -> Optional[str]:
    """'old' or 'large' when the message's age alone condemns it, else None."""
    if m.mtime >= limits.recent_after:
        return None
    if m.mtime < limits.old_before:
        return "old"
    if m.size > LARGE_MESSAGE and m.mtime < limits.large_before:
        return "large"
    return None


def plan_messages(messages: Sequence[Message], limits: Limits) -> List[Tuple[Message, str]]:
    """The messages of one mailbox to delete, each with its reason."""
    doomed, kept = [], []
    for m in messages:
        reason = message_reason(m, limits)
        if reason:
            doomed.append((m, reason))
        else:
            kept.append(m)
    total = sum(m.size for m in kept)
    if total > limits.quota_target:
        for m in sorted((m for m in kept if m.mtime < limits.recent_after),
                        key=lambda m: m.mtime):
            if total <= limits.quota_target:
                break
            doomed.append((m, "quota"))
            total -= m.size
    return doomed
