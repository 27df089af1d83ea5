"""The send rate limit in this process's memory: the files backend's SendRate.

One host has one outgoing filtermail, so its buckets may live in its memory
(core/gcra.py `RateLimiter`, one table per configured limit); a restart
forgetting them only grants one extra burst. Several hosts share a limit
only through the Redis store.
"""

from ..gcra import RateLimiter
from .roles import SendRate


class MemorySendRate(SendRate):
    blocking = False  # a dict in this process: filtermail asks on its reactor thread

    def __init__(self):
        self._limiters = {}  # (per_minute, burst) -> RateLimiter

    def check_send_rate(self, sender: str, now: float, per_minute: float, burst: int):
        limiter = self._limiters.get((per_minute, burst))
        if limiter is None:  # a race makes two limiters, one of which is kept
            limiter = self._limiters.setdefault((per_minute, burst),
                                                RateLimiter(per_minute, burst))
        return limiter.check(sender, now)
