"""Per-sender send rate limit: the Generic Cell Rate Algorithm (GCRA), pure.

A sender may send `burst` messages at once, then one every ``60 / per_minute``
seconds (``max_user_send_burst_size`` and ``max_user_send_per_minute`` in the
config). GCRA keeps one number per sender, the theoretical arrival time (TAT)
of the next message (ITU-T I.371 / the "virtual scheduling" form):

- emission interval ``T = 60 / per_minute``, tolerance ``tau = (burst - 1) * T``;
- a message at ``now`` is allowed if ``max(TAT, now) - now <= tau``, and then
  ``TAT = max(TAT, now) + T``; a refused message changes nothing and may retry
  after ``max(TAT, now) - now - tau`` seconds.

A sender whose TAT lies in the past is indistinguishable from one never seen,
so such entries are dropped by a sweep that runs at most once per ``burst * T``
seconds; the table is also capped (least recently allowed sender first out).
Time is passed in, so the limiter is deterministic and testable.
"""

import math
from collections import OrderedDict

from .verdicts import Verdict

RATE_LIMIT_CODE = 450


class RateLimiter:
    """GCRA per sender address (compared case-insensitively)."""

    def __init__(self, per_minute: float = 60, burst: int = 10,
                 max_entries: int = 100_000):
        if per_minute <= 0 or burst < 1 or max_entries < 1:
            raise ValueError("per_minute must be > 0, burst and max_entries >= 1")
        self.interval = 60.0 / per_minute
        self.tolerance = (burst - 1) * self.interval
        self.max_entries = max_entries
        self._sweep_every = burst * self.interval
        self._next_sweep = -math.inf
        self._tat = OrderedDict()

    def __len__(self):
        return len(self._tat)

    def check(self, sender: str, now: float) -> tuple[bool, float]:
        """Count a message from `sender` at `now`: (allowed, seconds until retry)."""
        self._maybe_sweep(now)
        key = sender.lower()
        tat = max(self._tat.get(key, now), now)
        if tat - now > self.tolerance:
            return False, tat - now - self.tolerance
        self._remember(key, tat + self.interval)
        return True, 0.0

    def _remember(self, key, tat):
        self._tat[key] = tat
        self._tat.move_to_end(key)
        if len(self._tat) > self.max_entries:
            # Evicting forgets a sender's debt; under a flood of new senders
            # that is better than refusing everyone or growing without bound.
            self._tat.popitem(last=False)

    def _maybe_sweep(self, now):
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_every
        for key in [key for key, tat in self._tat.items() if tat <= now]:
            del self._tat[key]


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
