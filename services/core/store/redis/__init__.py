"""The Redis backend: one relay's state shared by several hosts (docs/storage.md).

Imported only when `storage` is a redis:// or rediss:// URL."""

import redis

from ..roles import Store
from .accounts import RedisAccounts
from .client import RedisConn, connection_pool, last_login_ttl
from .push import RedisPushQueue, RedisTransfer
from .registration import RedisRegistration
from .sendrate import RedisSendRate

__all__ = ["RedisAccounts", "RedisConn", "RedisPushQueue", "RedisSendRate", "RedisTransfer",
           "open_redis"]


def open_redis(config) -> Store:
    client = redis.Redis(connection_pool=connection_pool(config))
    conn = RedisConn(client, config.mail_domain, config.redis.key_prefix)
    accounts = RedisAccounts(conn, last_login_ttl(config.expire.delete_inactive_users_after),
                             config.mailboxes_dir)
    push = RedisPushQueue(conn)
    return Store("redis", accounts, push, RedisSendRate(conn),
                 RedisTransfer(accounts, push), RedisRegistration(client, conn.keys.prefix),
                 conn.close)
