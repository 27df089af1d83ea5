"""The per-sender send rate limit's SMTP face: the 450 reply and its retry time.

The limit itself is GCRA (services/core/gcra.py, re-exported here as
`RateLimiter`); the store keeps its state (`Store.check_send_rate`): in
memory on the files store, in Redis shared by every filtermail otherwise.
"""

import math

from ..core.gcra import RateLimiter
from .verdicts import Verdict

__all__ = ["RATE_LIMIT_CODE", "RateLimiter", "SendRateLimit", "humanize_seconds",
           "rate_limit_reply", "rate_limit_text", "rate_limited"]

RATE_LIMIT_CODE = 450


class SendRateLimit:
    """The configured limit on the store's buckets; `check` may block (Redis)."""

    def __init__(self, store, per_minute: float, burst: int):
        self.store = store
        self.per_minute = per_minute
        self.burst = burst

    @classmethod
    def from_config(cls, config, store) -> "SendRateLimit":
        fm = config.filtermail
        return cls(store, fm.max_user_send_per_minute, fm.max_user_send_burst_size)

    def check(self, sender: str, now: float):
        """(allowed, seconds until retry); raises StoreError when the store cannot say."""
        return self.store.check_send_rate(sender, now, self.per_minute, self.burst)


def humanize_seconds(seconds: float) -> str:
    """Round up to whole seconds (or minutes from two minutes on): "1 second"."""
    seconds = max(1, math.ceil(seconds))
    if seconds >= 120:
        amount, unit = math.ceil(seconds / 60), "minute"
    else:
        amount, unit = seconds, "second"
    return f"{amount} {unit}{'' if amount == 1 else 's'}"


def rate_limit_text(retry_after: float) -> str:
    """The reply text after the code, e.g. "4.7.1 Rate limit exceeded: ..."."""
    return ("4.7.1 Rate limit exceeded: too much mail from this sender, "
            f"try again in {humanize_seconds(retry_after)}")


def rate_limit_reply(retry_after: float) -> str:
    """The full SMTP reply line: "450 4.7.1 Rate limit exceeded: ... try again in N seconds"."""
    return f"{RATE_LIMIT_CODE} {rate_limit_text(retry_after)}"


def rate_limited(retry_after: float) -> Verdict:
    """The refusal as a Verdict, like the content verdicts."""
    return Verdict(False, RATE_LIMIT_CODE, rate_limit_text(retry_after), "rate-limited")
