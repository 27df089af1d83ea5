"""doveauth's dict front-end: Dovecot 2.3 `passdb`/`userdb { driver = dict }`.

Keys (conf/dovecot/chatmail-auth.conf.ext writes them with Dovecot's %E escaping):

    shared/passdb/<password>"<user>   -> JSON {password, home, uid, gid} | N
    shared/userdb/<user>              -> JSON {home, uid, gid} | N
    iterate shared/userdb/            -> one row per account (`doveadm user '*'`)

Reads run where the store says (core/inline.py: inline on the files store,
in the lookup pool on Redis); creations hash in their own pool. A store failure (a `Temporary`)
becomes `F` in core/dictproto.py (Dovecot tells the client to try again), a
refusal becomes `N`.
"""

import json

from prometheus_client import Counter, Gauge, Histogram
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ..core import dictcodec
from ..core.dictproto import DictFailure, DictHandler
from ..core.inline import then
from ..core.logsafe import REPEATED
from ..core.metrics import timed, timed_call

LOOKUPS = Counter("chatmail_doveauth_lookups_total", "Dict lookups answered by doveauth",
                  ["db", "result"])
CREATED = Counter("chatmail_doveauth_accounts_created_total",
                  "Accounts created on first login")
REFUSED = Counter("chatmail_doveauth_refusals_total",
                  "Logins of unknown addresses refused, by reason", ["reason"])
LATENCY = Histogram("chatmail_doveauth_lookup_seconds",
                    "Time from request to answer, thread pool wait included", ["db"])
LAST_SUCCESS = Gauge("chatmail_doveauth_last_success_timestamp_seconds",
                     "When doveauth last answered a lookup from the store")

USERDB_PREFIX = "shared/userdb/"
# Label children bound once: `labels()` on every request costs a lock and a dict.
PASSDB_FOUND, PASSDB_REFUSED = LOOKUPS.labels("passdb", "found"), LOOKUPS.labels(
    "passdb", "refused")
USERDB_FOUND, USERDB_NOT_FOUND = LOOKUPS.labels("userdb", "found"), LOOKUPS.labels(
    "userdb", "not_found")
OTHER_NOT_FOUND = LOOKUPS.labels("other", "not_found")
FAILED = {db: LOOKUPS.labels(db, "failed") for db in ("passdb", "userdb", "iterate")}
LATENCY_BY_DB = {db: LATENCY.labels(db) for db in ("passdb", "userdb")}


class AuthDict(DictHandler):
    log = Logger()

    def __init__(self, policy, pool, create_pool=None, reads=None):
        self.policy = policy
        self.pool = pool
        # Creations (hashing) get their own threads, so that lookups of
        # existing accounts never queue behind a burst of first logins.
        self.create_pool = create_pool or pool
        self.reads = reads or pool  # core/inline.py: inline or this pool

    def lookup(self, key: str, user: str):
        match key.split("/", 2):
            case ["shared", "passdb", rest]:
                password, addr = self._split(rest, 2)
                return self._counted("passdb", self._passdb, addr, password)
            case ["shared", "userdb", rest]:
                (addr,) = self._split(rest, 1)
                return self._counted("userdb", self._userdb, addr)
        OTHER_NOT_FOUND.inc()
        return None

    def _passdb(self, addr, password):
        found = self.reads.run(self.policy.find, addr)
        return then(then(found, self._create_unless_found, addr, password),
                    self._passdb_reply)

    def _userdb(self, addr):
        return then(self.reads.run(self.policy.userdb, addr), self._userdb_reply)

    def _counted(self, db, step, *args):
        """`step(*args)` timed, its failures counted, now or later."""
        try:
            result = timed_call(LATENCY_BY_DB[db], step, *args)
        except Exception:
            FAILED[db].inc()
            raise
        if isinstance(result, Deferred):
            result.addErrback(self._failed, db)
        return result

    def _create_unless_found(self, found, addr, password):
        if found is not None:
            return found
        return self.create_pool.run(self.policy.create, addr, password)

    @staticmethod
    def _split(rest: str, count: int):
        try:
            parts = dictcodec.split_auth_key(rest)
        except dictcodec.DictProtocolError as e:
            raise DictFailure(f"malformed key: {e}") from None
        if len(parts) != count:
            raise DictFailure("malformed key: wrong number of fields")
        return parts

    def _passdb_reply(self, result):
        LAST_SUCCESS.set_to_current_time()
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
        return json.dumps(result.fields)

    def _userdb_reply(self, fields):
        LAST_SUCCESS.set_to_current_time()
        if fields:
            USERDB_FOUND.inc()
            return json.dumps(fields)
        USERDB_NOT_FOUND.inc()
        return None

    @staticmethod
    def _failed(failure, db):
        """Count it; core/dictproto.py answers `F` and logs what needs a log."""
        FAILED[db].inc()
        return failure

    def iterate(self, path: str, user: str, flags: int, max_rows: int):
        if path != USERDB_PREFIX:
            return ()
        d = self.pool.run(lambda: [(USERDB_PREFIX + a, "") for a in self.policy.users()])
        return timed(d, LATENCY.labels("iterate")).addErrback(self._failed, "iterate")
