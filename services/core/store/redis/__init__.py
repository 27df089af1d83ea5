"""The Redis backend: one relay's state shared by several hosts (docs/storage.md).

Imported only when `storage` is a redis:// or rediss:// URL. The roles use
redis-py's synchronous client, from the daemons' thread pools; the hot-path
reads have a reactor-side client of their own (wire.py, reads.py), except
over TLS (`rediss://`), where they stay in the pool."""

import redis

from ..roles import Reads, Store
from .accounts import RedisAccounts
from .client import RedisConn, connection_pool, last_login_ttl
from .push import RedisPushQueue, RedisTransfer
from .registration import RedisRegistration
from .sendrate import RedisSendRate

__all__ = ["RedisAccounts", "RedisConn", "RedisPushQueue", "RedisSendRate", "RedisTransfer",
           "open_redis"]


def open_redis(config) -> Store:
    pool = connection_pool(config)
    client = redis.Redis(connection_pool=pool)
    conn = RedisConn(client, config.mail_domain, config.redis.key_prefix)
    accounts = RedisAccounts(conn, last_login_ttl(config.expire.delete_inactive_users_after),
                             config.mailboxes_dir)
    push = RedisPushQueue(conn)
    links = []

    def reactor_reads(reactor) -> Reads:
        # the daemons only: wire.py brings hiredis, Twisted's endpoints and TLS,
        # 0.17 s of imports the tools (chatmailctl, chatmail-expire) do without
        from .reads import RedisAccountReads, RedisPushReads
        from .wire import RedisLink, endpoint_of, setup_commands

        kwargs, timeout = pool.connection_kwargs, config.redis.socket_timeout
        link = RedisLink(reactor, endpoint_of(reactor, kwargs, timeout), setup_commands(kwargs),
                         timeout, conn.health)
        links.append(link)
        return Reads(RedisAccountReads(conn, link), RedisPushReads(conn, link))

    def close():
        for link in links:
            link.close()
        conn.close()

    tls = issubclass(pool.connection_class, redis.SSLConnection)
    return Store("redis", accounts, push, RedisSendRate(conn),
                 RedisTransfer(accounts, push), RedisRegistration(client, conn.keys.prefix),
                 close, reactor_reads=None if tls else reactor_reads)
