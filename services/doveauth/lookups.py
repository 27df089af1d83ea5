"""The three questions Dovecot asks doveauth, answered off the reactor.

Both wire front-ends (dictfront for Dovecot 2.3's dict passdb, httpfront for
Dovecot 2.4's Lua passdb) ask through here, so the policy calls, the thread
pools, the metrics and the log lines are the same whichever Dovecot asks.
Answers are plain values: passdb/userdb fields (`password`, `home`, `uid`,
`gid`), None for an unknown or refused address, a list of addresses. A store
that cannot answer becomes `Temporary`, which each wire maps once (dict `F`,
HTTP 503).
"""

from prometheus_client import Counter, Histogram
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..core.failures import Temporary
from ..core.logsafe import REPEATED
from ..core.inline import then
from ..core.metrics import LastSuccess, timed, timed_call
from .policy import PassdbResult

LOOKUPS = Counter("chatmail_doveauth_lookups_total", "Lookups answered by doveauth",
                  ["db", "result"])
CREATED = Counter("chatmail_doveauth_accounts_created_total",
                  "Accounts created on first login")
REFUSED = Counter("chatmail_doveauth_refusals_total",
                  "Logins of unknown addresses refused, by reason", ["reason"])
LATENCY = Histogram("chatmail_doveauth_lookup_seconds",
                    "Time from request to answer, thread pool wait included", ["db"])
LAST_SUCCESS = LastSuccess("chatmail_doveauth_last_success_timestamp_seconds",
                           "When doveauth last answered a lookup from the store")
# Label children bound once: `labels()` on every request costs a lock and a dict.
PASSDB_FOUND, PASSDB_REFUSED = LOOKUPS.labels("passdb", "found"), LOOKUPS.labels(
    "passdb", "refused")
USERDB_FOUND, USERDB_NOT_FOUND = LOOKUPS.labels("userdb", "found"), LOOKUPS.labels(
    "userdb", "not_found")
OTHER_NOT_FOUND = LOOKUPS.labels("other", "not_found")
FAILED = {db: LOOKUPS.labels(db, "failed") for db in ("passdb", "userdb", "iterate")}
LATENCY_BY_DB = {db: LATENCY.labels(db) for db in ("passdb", "userdb", "iterate")}


class AccountLookups:
    log = Logger()

    def __init__(self, policy, pool, create_pool=None):
        self.policy = policy  # its reads: core/inline.py
        self.pool = pool
        # Creations (hashing) get their own threads, so that lookups of
        # existing accounts never queue behind a burst of first logins.
        self.create_pool = create_pool or pool

    def passdb(self, addr: str, password: str):
        """The account's fields (created on first login), or None: a plain value
        when the read ran inline and found the account, else a Deferred."""
        return self._counted("passdb", self._passdb, addr, password)

    def userdb(self, addr: str):
        """The userdb fields of an existing account, or None (value or Deferred)."""
        return self._counted("userdb", self._userdb, addr)

    def users(self):
        """Deferred: every account's address (`doveadm user '*'`), in the pool."""
        d = timed(self.pool.run(lambda: list(self.policy.users())), LATENCY_BY_DB["iterate"])
        return d.addErrback(self._store_failed, "iterate")

    def _passdb(self, addr, password):
        found = self.policy.find(addr)
        return then(then(found, self._create_unless_found, addr, password),
                    self._passdb_answer)

    def _userdb(self, addr):
        return then(self.policy.userdb(addr), self._userdb_answer)

    def _counted(self, db, step, *args):
        """`step(*args)` timed; a failure, now or later, counted and mapped once."""
        try:
            result = timed_call(LATENCY_BY_DB[db], step, *args)
        except Exception:
            return self._store_failed(Failure(), db)
        if isinstance(result, Deferred):
            result.addErrback(self._store_failed, db)
        return result

    def _create_unless_found(self, found, addr, password):
        if found is not None:
            return found
        d = self.create_pool.run(self.policy.prepare, addr, password)
        return d.addCallback(self._store_new, addr)

    def _store_new(self, prepared, addr):
        """The hash `prepare` made, stored in the pool (policy.py says why)."""
        if isinstance(prepared, PassdbResult):  # a refusal
            return prepared
        return self.pool.run(self.policy.store_new, addr, prepared)

    def _passdb_answer(self, result):
        LAST_SUCCESS.mark()
        if result.refusal is not None:
            PASSDB_REFUSED.inc()
            REFUSED.labels(result.refusal.value).inc()
            if result.refusal.name == "ACCOUNT_DAMAGED":
                self.log.error("login refused: {reason}", reason=result.refusal.value)
            else:  # any client can send these at will: once a minute per reason
                REPEATED.log(self.log.info, "login_refused_" + result.refusal.value,
                             "login refused: {reason}", reason=result.refusal.value)
            return None
        if result.created:
            CREATED.inc()
            self.log.info("account created")
        PASSDB_FOUND.inc()
        return result.fields

    def _userdb_answer(self, fields):
        LAST_SUCCESS.mark()
        (USERDB_FOUND if fields else USERDB_NOT_FOUND).inc()
        return fields or None

    def _store_failed(self, failure, db):
        """Count it and log it once here for both front-ends; the wire (dict
        `F`, HTTP 503) then answers without logging again."""
        FAILED[db].inc()
        failure.trap(Temporary)  # anything else is a bug: the edge logs its traceback
        if not failure.value.logged:  # an outage the store logged once is not repeated
            self.log.warn("{db} lookup failed: {why}", db=db, why=failure.getErrorMessage())
        answered = Temporary("temporary failure, try again later")
        answered.logged = True
        raise answered

    @staticmethod
    def count_other() -> None:
        OTHER_NOT_FOUND.inc()
