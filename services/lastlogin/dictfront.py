"""lastlogin's dict front-end: Dovecot's `last_login` plugin.

The plugin writes `shared/last-login/<user>` = unix seconds in a transaction
on every login (conf/dovecot sets `last_login_precision = s`). We keep only
the day (UTC midnight), write only when it changes, and never create anything
for an address that has no account (policy.py). A value that is not a
plausible unix time fails the commit with `F`; the connection stays usable.
A store failure is a `Temporary`, answered `F` by core/dictproto.py.
"""

from prometheus_client import Counter, Gauge, Histogram
from twisted.logger import Logger

from ..core.addresses import address_refusal
from ..core.dictproto import DictFailure, DictHandler
from ..core.failures import Refused
from ..core.logsafe import REPEATED
from ..core.metrics import timed
from ..core.store import Accounts, StoreError
from .policy import login_day

PREFIX = "shared/last-login/"

UPDATES = Counter("chatmail_lastlogin_updates_total", "last-login records received",
                  ["result"])
LATENCY = Histogram("chatmail_lastlogin_request_seconds",
                    "Time from request to answer, thread pool wait included", ["op"])
LAST_SUCCESS = Gauge("chatmail_lastlogin_last_success_timestamp_seconds",
                     "When lastlogin last recorded a login")


class LastLoginDict(DictHandler):
    log = Logger()

    def __init__(self, config, accounts: Accounts, pool):
        self.config = config
        self.accounts = accounts
        self.pool = pool

    def _addr(self, key: str):
        if not key.startswith(PREFIX):
            return None
        addr = key[len(PREFIX):]
        return None if address_refusal(addr, self.config.mail_domain) else addr

    def lookup(self, key: str, user: str):
        addr = self._addr(key)
        if addr is None:
            return None
        d = timed(self.pool.run(self.accounts.get_last_login, addr), LATENCY.labels("lookup"))
        return d.addCallback(lambda day: None if day is None else str(day))

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
        return timed(self.pool.run(self._apply, updates), LATENCY.labels("commit"))

    def _apply(self, updates):
        for addr, day in updates:
            try:
                known = self.accounts.set_last_login(addr, day)
            except StoreError:
                UPDATES.labels("failed").inc()
                raise
            UPDATES.labels("recorded" if known else "no_account").inc()
        LAST_SUCCESS.set_to_current_time()
