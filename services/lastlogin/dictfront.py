"""lastlogin's dict front-end: Dovecot's `last_login` plugin.

The plugin writes `shared/last-login/<user>` = unix seconds in a transaction
on every login (conf/dovecot sets `last_login_precision = s`). We keep only
the day (UTC midnight), write only when it changes, and never create anything
for an address that has no account. A value that is not a plausible unix time
fails the commit with `F`; the connection stays usable.
"""

from prometheus_client import Counter, Gauge, Histogram
from twisted.logger import Logger

from ..core.addresses import BadAddress, check_address
from ..core.dictproto import DictFailure, DictHandler
from ..core.metrics import timed
from ..core.store import StoreError, day_of

PREFIX = "shared/last-login/"
MAX_TIMESTAMP = 1 << 33  # year 2242; larger values are milli/micro seconds or junk

UPDATES = Counter("chatmail_lastlogin_updates_total", "last-login records received",
                  ["result"])
LATENCY = Histogram("chatmail_lastlogin_request_seconds",
                    "Time from request to answer, thread pool wait included", ["op"])
LAST_SUCCESS = Gauge("chatmail_lastlogin_last_success_timestamp_seconds",
                     "When lastlogin last recorded a login")


def parse_timestamp(value) -> int:
    try:
        ts = int(value)
    except (TypeError, ValueError):
        raise DictFailure("last-login value is not a unix time") from None
    if not 0 <= ts < MAX_TIMESTAMP:
        raise DictFailure("last-login value is out of range (expected seconds)")
    return ts


class LastLoginDict(DictHandler):
    log = Logger()

    def __init__(self, config, store, pool):
        self.config = config
        self.store = store
        self.pool = pool

    def _addr(self, key: str):
        if not key.startswith(PREFIX):
            return None
        try:
            return check_address(key[len(PREFIX):], self.config.mail_domain)
        except BadAddress:
            return None

    def lookup(self, key: str, user: str):
        addr = self._addr(key)
        if addr is None:
            return None
        d = timed(self.pool.run(self.store.get_last_login, addr), LATENCY.labels("lookup"))
        d.addCallback(lambda day: None if day is None else str(day))
        return d.addErrback(self._store_failed)

    @staticmethod
    def _store_failed(failure):
        failure.trap(StoreError)
        raise DictFailure(f"temporary failure: {failure.getErrorMessage()}")

    def commit(self, user: str, changes):
        updates = []
        for change in changes:
            addr = self._addr(change.key)
            if change.op != "set" or addr is None:
                self.log.warn("ignored {op} of a key that is not a last-login record",
                              op=change.op)
                continue
            updates.append((addr, day_of(parse_timestamp(change.value))))
        return timed(self.pool.run(self._apply, updates), LATENCY.labels("commit"))

    def _apply(self, updates):
        for addr, day in updates:
            try:
                known = self.store.set_last_login(addr, day)
            except StoreError as e:
                UPDATES.labels("failed").inc()
                raise DictFailure(f"temporary failure: {e}") from None
            UPDATES.labels("recorded" if known else "no_account").inc()
        LAST_SUCCESS.set_to_current_time()
