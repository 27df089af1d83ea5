"""The Redis store: one relay's state shared by several hosts.

Selected by `storage: redis://host:port/db` (or `rediss://` for TLS); the
`redis:` config section holds the password file, key prefix, CA file and
timeout. The client is redis-py's synchronous one with a connection pool:
daemons call the store from their thread pool, and the pool is thread-safe.

Keys (every key starts with the relay's prefix, default `chatmail:<domain>:`,
so several relays can share one Redis database):

    <prefix>account:<addr>     HASH  password = {SHA512-CRYPT}$6$...
                                     enforceE2EEincoming = 1 (absent = off)
                                     no TTL: accounts end only by chatmail-expire
    <prefix>lastlogin:<addr>   STRING  last-login day (unix time of UTC midnight)
                                     EXPIREAT day + last_login_ttl (below)

Push tokens and the push queue are described in redispush.py:

    <prefix>tokens:<addr>      HASH  token -> last-set time (TTL: max age after the newest)
    <prefix>notify:due, <prefix>notify:items, <prefix>notify:addr:<addr>
                               the persistent notification queue (no TTL)

filtermail's send rate limit (GCRA, core/gcra.py), shared by every filtermail:

    <prefix>rate:<sender>      STRING  the theoretical arrival time (TAT) of the
                                     sender's next message; TTL: until the bucket
                                     is full again (at most burst / per_minute min)

The GCRA step is one Lua script (SEND_RATE), so concurrent messages of one
sender on several hosts are counted exactly. It uses the caller's clock
(`now`), like every other method here, rather than Redis' TIME: the tests
drive it with a fixed clock, and a script that reads no clock replicates
the same on any Redis version. The cost is clock skew between hosts: a host
whose clock is d seconds ahead lets a sender through up to d seconds early
(about d * per_minute / 60 messages more), one behind makes it wait d longer.
With NTP (milliseconds) that is far below one interval. The sender is
lower-cased and used as given (any bytes of MAIL FROM): it never becomes a
pattern or a path.

Deleting an account (`delete_account(s)`, for chatmailctl and chatmail-expire)
renames its home `<mailboxes_dir>/<addr>` on this host out of sight, removes
its keys and queued notifications in one script, then removes the home.

What a TTL means here. A last-login record outlives the inactivity limit
(`expire.delete_inactive_users_after`) by the same span again (at least 30
days): by then chatmail-expire has deleted the account. A record that is gone
while its account exists therefore means "no login for longer than that", and
`get_last_login` answers day 0 (long ago); expiry treats it as inactive, as it
would have anyway. Raising the limit to more than twice its value makes
accounts inactive longer than their records live look expired: they log in
again to get a fresh record. Accounts have no TTL: an account must never
disappear silently. This is why Redis must run with `maxmemory-policy
noeviction` (the Debian default): an evicting policy would drop keys.

Atomicity: creating an account and recording a login are Lua scripts
(redis_scripts.py), so of concurrent first logins on several hosts exactly
one wins and the enforceE2EEincoming flag is never later than the password.

Failure: an unreachable Redis (refused, timeout, loading, read-only replica)
raises StoreUnavailable, logged once when the outage begins and once when it
ends; redis-py's pool reconnects by itself on the next call. A failed call is
retried once at once on a fresh connection (pooled connections die when Redis
restarts); each attempt waits at most `redis.socket_timeout` seconds.
"""

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import redis
from redis.exceptions import ReadOnlyError
from redis.backoff import NoBackoff
from redis.retry import Retry
from twisted.logger import Logger

from ..addresses import BadAddress, check_address
from ..gcra import Gcra
from .base import AccountDamaged, Store, StoreError, StoreUnavailable, day_of
from .files import hide_home, remove_tombstone
from .redis_scripts import SCRIPTS
from .redispush import RedisPushMixin

ENFORCE_E2EE = "enforceE2EEincoming"
DAY = 86400
SCAN_COUNT = 1000
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, ReadOnlyError)


def default_prefix(mail_domain: str) -> str:
    return f"chatmail:{mail_domain}:"


def last_login_ttl(inactive_days: int) -> int:
    """Seconds a last-login record lives after its day (see the module docstring)."""
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
    options = dict(socket_timeout=rc.socket_timeout, socket_connect_timeout=rc.socket_timeout,
                   retry=Retry(NoBackoff(), 1), retry_on_error=[redis.ConnectionError],
                   decode_responses=True, health_check_interval=30)
    if rc.password_file:
        options["password"] = read_secret(rc.password_file)
    if rc.tls_ca_file and config.storage.startswith("rediss:"):
        options["ssl_ca_certs"] = rc.tls_ca_file
    try:
        return redis.ConnectionPool.from_url(config.storage, **options)
    except ValueError as e:
        raise StoreError(f"storage: not a usable Redis URL: {e}") from None


class RedisStore(RedisPushMixin, Store):
    def __init__(self, client: redis.Redis, mail_domain: str, prefix: Optional[str] = None,
                 last_login_ttl: int = last_login_ttl(90), mailboxes_dir=None):
        self.client = client
        self.mailboxes_dir = None if mailboxes_dir is None else Path(mailboxes_dir)
        self.mail_domain = mail_domain
        self.keys = KeySpace(default_prefix(mail_domain) if prefix is None else prefix)
        self.last_login_ttl = last_login_ttl
        self.health = Health()
        self.scripts = {name: client.register_script(src) for name, src in SCRIPTS.items()}

    @classmethod
    def from_config(cls, config) -> "RedisStore":
        client = redis.Redis(connection_pool=connection_pool(config))
        return cls(client, config.mail_domain, config.redis.key_prefix,
                   last_login_ttl(config.expire.delete_inactive_users_after),
                   config.mailboxes_dir)

    @contextmanager
    def _redis(self):
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

    def _check(self, addr: str) -> str:
        try:
            return check_address(addr, self.mail_domain)
        except BadAddress as e:
            raise ValueError(f"refusing to use address as a key: {e}") from None

    def get_password(self, addr: str) -> Optional[str]:
        key = self.keys.account(self._check(addr))
        with self._redis() as r:
            fields = r.hgetall(key)
        if not fields:
            return None
        password = fields.get("password", "")
        if not password.startswith("{"):
            raise AccountDamaged("account has no usable password hash")
        return password

    def create_account(self, addr: str, password_hash: str, now: float) -> str:
        return self._create(addr, password_hash, day_of(now), True)[1]

    def import_account(self, addr: str, password_hash: str, last_login_day: int,
                       enforce_e2ee: bool) -> bool:
        return self._create(addr, password_hash, last_login_day, enforce_e2ee)[0]

    def _create(self, addr, password_hash, day, enforce_e2ee):
        addr = self._check(addr)
        keys = [self.keys.account(addr), self.keys.last_login(addr)]
        args = [password_hash, day, day + self.last_login_ttl, "1" if enforce_e2ee else "0"]
        with self._redis():
            status, stored = self.scripts["create_account"](keys=keys, args=args)
        if status == -1 or not stored.startswith("{"):
            raise AccountDamaged("account has no usable password hash")
        return status == 1, stored

    def iter_accounts(self) -> Iterator[str]:
        # SCAN may return a key twice (while Redis rehashes): report each once.
        seen, cursor, cut = set(), 0, len(self.keys.account(""))
        pattern = self.keys.account_pattern()
        while True:
            with self._redis() as r:
                cursor, keys = r.scan(cursor, match=pattern, count=SCAN_COUNT)
            for key in keys:
                addr = key[cut:]
                if addr not in seen:
                    seen.add(addr)
                    yield addr
            if cursor == 0:
                return

    def get_last_login(self, addr: str) -> Optional[int]:
        addr = self._check(addr)
        with self._redis() as r:
            pipe = r.pipeline(transaction=False)
            exists, day = pipe.exists(self.keys.account(addr)).get(
                self.keys.last_login(addr)).execute()
        if not exists:
            return None
        return 0 if day is None else int(day)

    def set_last_login(self, addr: str, day: int) -> bool:
        addr = self._check(addr)
        keys = [self.keys.account(addr), self.keys.last_login(addr)]
        with self._redis():
            known = self.scripts["set_last_login"](keys=keys, args=[day, day + self.last_login_ttl])
        return bool(known)

    def enforces_e2ee_incoming(self, addr: str) -> bool:
        key = self.keys.account(self._check(addr))
        with self._redis() as r:
            return bool(r.hexists(key, ENFORCE_E2EE))

    def delete_account(self, addr: str) -> bool:
        addr = self._check(addr)
        tombstone = None
        if self.mailboxes_dir is not None:
            tombstone = hide_home(self.mailboxes_dir, self.mailboxes_dir / addr)
        k = self.keys
        keys = [k.account(addr), k.last_login(addr), k.tokens(addr), k.queue_of(addr),
                k.queue_due(), k.queue_items()]
        with self._redis():
            existed = self.scripts["delete_account"](keys=keys)
        if tombstone is not None:
            remove_tombstone(tombstone)
        return bool(existed) or tombstone is not None

    def delete_accounts(self, addrs) -> int:
        addrs = [self._check(addr) for addr in set(addrs)]  # checks every address first
        return sum(1 for addr in addrs if self.delete_account(addr))

    def check_send_rate(self, sender: str, now: float, per_minute: float, burst: int):
        gcra = Gcra(per_minute, burst)
        with self._redis():
            allowed, retry = self.scripts["send_rate"](
                keys=[self.keys.send_rate(sender.lower())],
                args=[repr(float(now)), repr(gcra.interval), repr(gcra.tolerance)])
        return (True, 0.0) if allowed == 1 else (False, float(retry))

    def close(self) -> None:
        self.client.connection_pool.disconnect()
