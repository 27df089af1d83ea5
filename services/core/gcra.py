"""Per-sender send rate limit: the Generic Cell Rate Algorithm (GCRA), pure.

A sender may send `burst` messages at once, then one every ``60 / per_minute``
seconds (``max_user_send_burst_size`` and ``max_user_send_per_minute`` in the
config). GCRA keeps one number per sender, the theoretical arrival time (TAT)
of the next message (ITU-T I.371 / the "virtual scheduling" form):

- emission interval ``T = 60 / per_minute``, tolerance ``tau = (burst - 1) * T``;
- a message at ``now`` is allowed if ``max(TAT, now) - now <= tau``, and then
  ``TAT = max(TAT, now) + T``; a refused message changes nothing and may retry
  after ``max(TAT, now) - now - tau`` seconds.

`Gcra` is that arithmetic alone; the Redis store runs the same steps in a Lua
script (store/redis/scripts.py). `RateLimiter` is the in-memory table of one
process, the files backend's send rate (store/memrate.py): a sender whose TAT
lies in the past is indistinguishable from one never seen, so such entries
are dropped by a sweep that runs at most once per ``burst * T`` seconds; the
table is also capped
(least recently allowed sender first out). Time is passed in, so both are
deterministic and testable.
"""

import math
import threading
from collections import OrderedDict
from typing import Optional, Tuple


class Gcra:
    """The parameters of one limit and its one step."""

    def __init__(self, per_minute: float, burst: int):
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute must be > 0, burst >= 1")
        self.interval = 60.0 / per_minute
        self.tolerance = (burst - 1) * self.interval

    def step(self, tat: Optional[float], now: float) -> Tuple[bool, float, float]:
        """(allowed, seconds until retry, new TAT) for a message at `now`."""
        tat = now if tat is None else max(tat, now)
        if tat - now > self.tolerance:
            return False, tat - now - self.tolerance, tat
        return True, 0.0, tat + self.interval


class RateLimiter:
    """GCRA per sender address (compared case-insensitively), thread-safe."""

    def __init__(self, per_minute: float = 60, burst: int = 10,
                 max_entries: int = 100_000):
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.gcra = Gcra(per_minute, burst)
        self.interval = self.gcra.interval
        self.tolerance = self.gcra.tolerance
        self.max_entries = max_entries
        self._sweep_every = burst * self.interval
        self._next_sweep = -math.inf
        self._tat = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._tat)

    def check(self, sender: str, now: float) -> Tuple[bool, float]:
        """Count a message from `sender` at `now`: (allowed, seconds until retry)."""
        key = sender.lower()
        with self._lock:
            self._maybe_sweep(now)
            allowed, retry_after, tat = self.gcra.step(self._tat.get(key), now)
            if allowed:
                self._remember(key, tat)
        return allowed, retry_after

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
