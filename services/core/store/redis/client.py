"""The Redis backend's connection: key names, outage tracking, error mapping.

Selected by `storage: redis://host:port/db` (or `rediss://` for TLS); the
`redis:` config section holds the password file, key prefix, CA file and
timeout. The client is redis-py's synchronous one with a connection pool:
daemons call the store from their thread pool, and the pool is thread-safe.
Keys, TTLs and outage behaviour are described for operators in
docs/storage.md.

Failure: an unreachable Redis (refused, timeout, loading, read-only replica)
raises StoreUnavailable, logged once when the outage begins and once when it
ends; redis-py's pool reconnects by itself on the next call. A failed call is
retried once at once on a fresh connection (pooled connections die when Redis
restarts); each attempt waits at most `redis.socket_timeout` seconds.
"""

import threading
from contextlib import contextmanager
from typing import Iterator, Optional

import redis
from redis.exceptions import ReadOnlyError
from redis.backoff import NoBackoff
from redis.retry import Retry
from twisted.logger import Logger

from ...addresses import check_address
from ...days import DAY
from ..errors import AccountDamaged, StoreError, StoreUnavailable
from .scripts import SCRIPTS

SCAN_COUNT = 1000
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, ReadOnlyError)


def default_prefix(mail_domain: str) -> str:
    return f"chatmail:{mail_domain}:"


def last_login_ttl(inactive_days: int) -> int:
    """Seconds a last-login record lives after its day (see docs/storage.md)."""
    return (inactive_days + max(inactive_days, 30)) * DAY


def glob_escape(text: str) -> str:
    """Escape SCAN MATCH's glob characters, so a prefix matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class KeySpace:
    """The names of a relay's keys; the only place that builds them."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def account(self, addr: str) -> str:
        return f"{self.prefix}account:{addr}"

    def last_login(self, addr: str) -> str:
        return f"{self.prefix}lastlogin:{addr}"

    def tokens(self, addr: str) -> str:
        return f"{self.prefix}tokens:{addr}"

    def queue_due(self) -> str:
        return f"{self.prefix}notify:due"

    def queue_items(self) -> str:
        return f"{self.prefix}notify:items"

    def queue_of(self, addr: str) -> str:
        return f"{self.prefix}notify:addr:{addr}"

    def send_rate(self, sender: str) -> bytes:
        # bytes: MAIL FROM may carry undecodable bytes (surrogate escapes)
        return f"{self.prefix}rate:{sender}".encode("utf-8", "surrogateescape")

    def account_pattern(self) -> str:
        return glob_escape(self.account("")) + "*"


class Health:
    """Logs an outage once when it begins and once when it ends, from any thread."""

    log = Logger()

    def __init__(self):
        self.down = False
        self._lock = threading.Lock()

    def failed(self, why: Exception) -> None:
        with self._lock:
            if self.down:
                return
            self.down = True
        self.log.error("redis store unreachable, answering temporary failures until it "
                       "is back: {why}", why=why)

    def ok(self) -> None:
        if not self.down:  # the common case takes no lock
            return
        with self._lock:
            if not self.down:
                return
            self.down = False
        self.log.info("redis store reachable again")


def read_secret(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise StoreError(f"redis.password_file: cannot read {path}: "
                         f"{getattr(e, 'strerror', None) or e}") from None


def connection_pool(config) -> redis.ConnectionPool:
    rc = config.redis
    # No health_check_interval: redis-py PINGs a new connection with a retry of
    # its own inside the connect's, so a frozen Redis cost four waits of
    # socket_timeout; the one retry below already replaces a dead connection.
    options = dict(socket_timeout=rc.socket_timeout, socket_connect_timeout=rc.socket_timeout,
                   retry=Retry(NoBackoff(), 1), retry_on_error=[redis.ConnectionError],
                   decode_responses=True)
    if rc.password_file:
        options["password"] = read_secret(rc.password_file)
    if rc.tls_ca_file and config.storage.startswith("rediss:"):
        options["ssl_ca_certs"] = rc.tls_ca_file
    try:
        return redis.ConnectionPool.from_url(config.storage, **options)
    except ValueError as e:
        raise StoreError(f"storage: not a usable Redis URL: {e}") from None


class RedisConn:
    """One relay's Redis: its client, key names, scripts and outage state,
    shared by the backend's roles."""

    def __init__(self, client: redis.Redis, mail_domain: str, prefix: Optional[str] = None):
        self.client = client
        self.mail_domain = mail_domain
        self.keys = KeySpace(default_prefix(mail_domain) if prefix is None else prefix)
        self.health = Health()
        self.scripts = {name: client.register_script(src) for name, src in SCRIPTS.items()}

    def check(self, addr: str) -> str:
        """`addr` if it may become a key; ValueError (BadAddress) otherwise."""
        return check_address(addr, self.mail_domain)

    @contextmanager
    def guard(self):
        """Turn redis-py's errors into store errors, and track the outage."""
        try:
            yield self.client
        except _UNREACHABLE as e:
            self.health.failed(e)
            raise StoreUnavailable(f"redis unreachable: {e}") from None
        except redis.ResponseError as e:
            if "WRONGTYPE" in str(e):
                raise AccountDamaged("a key of this account has the wrong type") from None
            raise StoreError(f"redis error: {e}") from None
        except redis.RedisError as e:
            raise StoreError(f"redis error: {e}") from None
        self.health.ok()

    def run(self, script: str, keys, args=()):
        """Run one of SCRIPTS atomically."""
        with self.guard():
            return self.scripts[script](keys=keys, args=list(args))

    def scan(self, pattern: str) -> Iterator[str]:
        """Every key matching `pattern`, once (SCAN may return a key twice)."""
        seen, cursor = set(), 0
        while True:
            with self.guard() as r:
                cursor, keys = r.scan(cursor, match=pattern, count=SCAN_COUNT)
            for key in keys:
                if key not in seen:
                    seen.add(key)
                    yield key
            if cursor == 0:
                return

    def close(self) -> None:
        self.client.connection_pool.disconnect()
