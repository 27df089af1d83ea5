"""The Redis backend's reads for the daemons' hot paths, on the reactor (wire.py).

The same answers as `RedisAccounts.get_password`/`get_last_login` and
`RedisPushQueue.get_tokens`, as Deferreds; the conversions are theirs. Every
read goes to Redis: nothing is cached, so every host sees a password change,
a deletion or an expiry at once.
"""

from .accounts import last_login_of, password_of
from .client import RedisConn
from .push import fresh_tokens, token_times_of
from .wire import RedisLink


def _fields(flat: list) -> dict:
    """HGETALL's flat [field, value, ...] as a dict."""
    it = iter(flat)
    return dict(zip(it, it))


class RedisAccountReads:
    def __init__(self, conn: RedisConn, link: RedisLink):
        self.conn, self.keys, self.link = conn, conn.keys, link

    def get_password(self, addr: str):
        key = self.keys.account(self.conn.check(addr))
        return self.link.call(("HGETALL", key)).addCallback(
            lambda flat: password_of(_fields(flat)))

    def get_last_login(self, addr: str):
        addr = self.conn.check(addr)
        d = self.link.call(("EXISTS", self.keys.account(addr)),
                           ("GET", self.keys.last_login(addr)))
        return d.addCallback(lambda replies: last_login_of(*replies))


class RedisPushReads:
    def __init__(self, conn: RedisConn, link: RedisLink):
        self.conn, self.keys, self.link = conn, conn.keys, link

    def get_tokens(self, addr: str, now: float, max_age: float):
        key = self.keys.tokens(self.conn.check(addr))
        return self.link.call(("HGETALL", key)).addCallback(
            lambda flat: fresh_tokens(token_times_of(_fields(flat)), now, max_age))
