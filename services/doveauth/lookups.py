"""The three questions Dovecot asks doveauth, answered off the reactor.

Both wire front-ends (dictfront for Dovecot 2.3's dict passdb, httpfront for
Dovecot 2.4's Lua passdb) ask through here, so the policy calls, the thread
pools, the metrics and the log lines are the same whichever Dovecot asks.
Answers are plain values: passdb/userdb fields (`password`, `home`, `uid`,
`gid`), None for an unknown or refused address, a list of addresses. A store
that cannot answer becomes `Temporary`, which each wire maps once (dict `F`,
HTTP 503).
"""

from prometheus_client import Counter, Gauge, Histogram
from twisted.logger import Logger

from ..core.failures import Temporary
from ..core.logsafe import REPEATED
from ..core.metrics import timed

LOOKUPS = Counter("chatmail_doveauth_lookups_total", "Lookups answered by doveauth",
                  ["db", "result"])
CREATED = Counter("chatmail_doveauth_accounts_created_total",
                  "Accounts created on first login")
REFUSED = Counter("chatmail_doveauth_refusals_total",
                  "Logins of unknown addresses refused, by reason", ["reason"])
LATENCY = Histogram("chatmail_doveauth_lookup_seconds",
                    "Time from request to answer, thread pool wait included", ["db"])
LAST_SUCCESS = Gauge("chatmail_doveauth_last_success_timestamp_seconds",
                     "When doveauth last answered a lookup from the store")


class AccountLookups:
    log = Logger()

    def __init__(self, policy, pool, create_pool=None):
        self.policy = policy
        self.pool = pool
        # Creations (hashing) get their own threads, so that lookups of
        # existing accounts never queue behind a burst of first logins.
        self.create_pool = create_pool or pool

    def passdb(self, addr: str, password: str):
        """Deferred: the account's fields (created on first login), or None."""
        d = self.pool.run(self.policy.find, addr)
        d.addCallback(self._create_unless_found, addr, password)
        d = timed(d, LATENCY.labels("passdb"))
        return d.addCallbacks(self._passdb_answer, self._store_failed, errbackArgs=("passdb",))

    def userdb(self, addr: str):
        """Deferred: the userdb fields of an existing account, or None."""
        d = timed(self.pool.run(self.policy.userdb, addr), LATENCY.labels("userdb"))
        return d.addCallbacks(self._userdb_answer, self._store_failed, errbackArgs=("userdb",))

    def users(self):
        """Deferred: every account's address (`doveadm user '*'`)."""
        d = timed(self.pool.run(lambda: list(self.policy.users())), LATENCY.labels("iterate"))
        return d.addErrback(self._store_failed, "iterate")

    def _create_unless_found(self, found, addr, password):
        if found is not None:
            return found
        return self.create_pool.run(self.policy.create, addr, password)

    def _passdb_answer(self, result):
        LAST_SUCCESS.set_to_current_time()
        if result.refusal is not None:
            LOOKUPS.labels("passdb", "refused").inc()
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
        LOOKUPS.labels("passdb", "found").inc()
        return result.fields

    def _userdb_answer(self, fields):
        LAST_SUCCESS.set_to_current_time()
        LOOKUPS.labels("userdb", "found" if fields else "not_found").inc()
        return fields or None

    def _store_failed(self, failure, db):
        """Count it and log it once here for both front-ends; the wire (dict
        `F`, HTTP 503) then answers without logging again."""
        LOOKUPS.labels(db, "failed").inc()
        failure.trap(Temporary)  # anything else is a bug: the edge logs its traceback
        if not failure.value.logged:  # an outage the store logged once is not repeated
            self.log.warn("{db} lookup failed: {why}", db=db, why=failure.getErrorMessage())
        answered = Temporary("temporary failure, try again later")
        answered.logged = True
        raise answered

    @staticmethod
    def count_other() -> None:
        LOOKUPS.labels("other", "not_found").inc()
