"""The Redis backend's SendRate: one GCRA bucket per sender, shared by every
filtermail (`<prefix>rate:<sender>`, docs/storage.md).

The GCRA step (core/gcra.py) is one Lua script, so concurrent messages of
one sender on several hosts are counted exactly. It uses the caller's clock
(`now`) rather than Redis' TIME: the tests drive it with a fixed clock, and
a script that reads no clock replicates the same on any Redis version.
"""

from ...gcra import Gcra
from ..roles import SendRate
from .client import RedisConn


class RedisSendRate(SendRate):
    def __init__(self, conn: RedisConn):
        self.conn = conn

    def check_send_rate(self, sender: str, now: float, per_minute: float, burst: int):
        gcra = Gcra(per_minute, burst)
        allowed, retry = self.conn.run(
            "send_rate", [self.conn.keys.send_rate(sender.lower())],
            [repr(float(now)), repr(gcra.interval), repr(gcra.tolerance)])
        return (True, 0.0) if allowed == 1 else (False, float(retry))
