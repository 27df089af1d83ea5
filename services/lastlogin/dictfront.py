"""lastlogin's dict front-end: Dovecot's `last_login` plugin.

The plugin writes `shared/last-login/<user>` = unix seconds in a transaction
on every login (conf/dovecot sets `last_login_precision = s`). We keep only
the day (UTC midnight), write only when it changes, and never create anything
for an address that has no account (policy.py). A value that is not a
plausible unix time fails the commit with `F`; the connection stays usable.
A store failure is a `Temporary`, answered `F` by core/dictproto.py.
Reads run on the reactor thread (core/inline.py: files inline, Redis on its
reactor-side client): a login on the day already recorded (most of them) is
answered without a thread; only a new day is written, in the pool.
"""

from prometheus_client import Counter, Histogram
from twisted.logger import Logger

from ..core.addresses import address_refusal
from ..core.dictproto import DictFailure, DictHandler
from ..core.failures import Refused
from twisted.internet.defer import Deferred

from ..core.inline import then
from ..core.logsafe import REPEATED
from ..core.metrics import LastSuccess, timed_call
from ..core.store import Accounts, StoreError
from .policy import login_day

PREFIX = "shared/last-login/"

UPDATES = Counter("chatmail_lastlogin_updates_total", "last-login records received",
                  ["result"])
LATENCY = Histogram("chatmail_lastlogin_request_seconds",
                    "Time from request to answer, thread pool wait included", ["op"])
LAST_SUCCESS = LastSuccess("chatmail_lastlogin_last_success_timestamp_seconds",
                           "When lastlogin last recorded a login")
# Label children bound once: `labels()` on every request costs a lock and a dict.
UPDATES_RECORDED, UPDATES_NO_ACCOUNT, UPDATES_FAILED = (
    UPDATES.labels(result) for result in ("recorded", "no_account", "failed"))
LOOKUP_LATENCY, COMMIT_LATENCY = LATENCY.labels("lookup"), LATENCY.labels("commit")


def _day_text(day):
    return None if day is None else str(day)


class LastLoginDict(DictHandler):
    log = Logger()

    def __init__(self, config, accounts: Accounts, pool, reads=None):
        self.config = config
        self.accounts = accounts  # writes, in the pool
        self.pool = pool
        self.reads = accounts if reads is None else reads  # `get_last_login`, core/inline.py

    def _addr(self, key: str):
        if not key.startswith(PREFIX):
            return None
        addr = key[len(PREFIX):]
        return None if address_refusal(addr, self.config.mail_domain) else addr

    def lookup(self, key: str, user: str):
        addr = self._addr(key)
        if addr is None:
            return None
        day = timed_call(LOOKUP_LATENCY, self.reads.get_last_login, addr)
        return then(day, _day_text)

    def commit(self, user: str, changes):
        updates = []
        for change in changes:
            addr = self._addr(change.key)
            if change.op != "set" or addr is None:
                REPEATED.warn(self.log, "lastlogin_ignored_change",
                              "ignored {op} of a key that is not a last-login record",
                              op=change.op)
                continue
            day = login_day(change.value)
            if isinstance(day, Refused):
                raise DictFailure(day.text)
            updates.append((addr, day))
        return timed_call(COMMIT_LATENCY, self._record, updates)

    def _record(self, updates):
        """Read each update's recorded day first, then write in the pool the
        ones that change it (a value, or a Deferred)."""
        try:
            result = self._skip_recorded(iter(updates), [])
        except StoreError:
            UPDATES_FAILED.inc()
            raise
        if isinstance(result, Deferred):
            result.addErrback(_count_failure)
        return result

    def _skip_recorded(self, updates, left):
        for addr, day in updates:
            recorded = self.reads.get_last_login(addr)
            if isinstance(recorded, Deferred):  # the rest continue when it is read
                return recorded.addCallback(self._sorted, addr, day, updates, left)
            _sort(recorded, addr, day, left)
        if not left:
            LAST_SUCCESS.mark()
            return None
        return self.pool.run(self._apply, left, self.accounts.set_last_login)

    def _sorted(self, recorded, addr, day, updates, left):
        _sort(recorded, addr, day, left)
        return self._skip_recorded(updates, left)

    @staticmethod
    def _apply(updates, record):
        """`record(addr, day)` for each update, in the pool."""
        for addr, day in updates:
            known = record(addr, day)
            (UPDATES_RECORDED if known else UPDATES_NO_ACCOUNT).inc()
        LAST_SUCCESS.mark()


def _sort(recorded, addr, day, left):
    """Count an update that needs no write; keep the others in `left`."""
    if recorded is None:
        UPDATES_NO_ACCOUNT.inc()
    elif recorded == day:
        UPDATES_RECORDED.inc()
    else:
        left.append((addr, day))


def _count_failure(failure):
    if failure.check(StoreError):
        UPDATES_FAILED.inc()
    return failure
