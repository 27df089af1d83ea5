"""doveauth's dict front-end: Dovecot 2.3 `passdb`/`userdb { driver = dict }`.

Keys (conf/dovecot/chatmail-auth.conf.ext writes them with Dovecot's %E escaping):

    shared/passdb/<password>"<user>   -> JSON {password, home, uid, gid} | N
    shared/userdb/<user>              -> JSON {home, uid, gid} | N
    iterate shared/userdb/            -> one row per account (`doveadm user '*'`)

Policy calls run in the daemon's thread pool; a store failure (a `Temporary`)
becomes `F` in core/dictproto.py (Dovecot tells the client to try again), a
refusal becomes `N`.
"""

import json

from prometheus_client import Counter, Gauge, Histogram
from twisted.logger import Logger

from ..core import dictcodec
from ..core.dictproto import DictFailure, DictHandler
from ..core.logsafe import REPEATED
from ..core.metrics import timed

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


class AuthDict(DictHandler):
    log = Logger()

    def __init__(self, policy, pool, create_pool=None):
        self.policy = policy
        self.pool = pool
        # Creations (hashing) get their own threads, so that lookups of
        # existing accounts never queue behind a burst of first logins.
        self.create_pool = create_pool or pool

    def lookup(self, key: str, user: str):
        match key.split("/", 2):
            case ["shared", "passdb", rest]:
                password, addr = self._split(rest, 2)
                d = self.pool.run(self.policy.find, addr)
                d.addCallback(self._create_unless_found, addr, password)
                d = timed(d, LATENCY.labels("passdb"))
                return d.addCallbacks(self._passdb_reply, self._failed, errbackArgs=("passdb",))
            case ["shared", "userdb", rest]:
                (addr,) = self._split(rest, 1)
                d = timed(self.pool.run(self.policy.userdb, addr), LATENCY.labels("userdb"))
                return d.addCallbacks(self._userdb_reply, self._failed,
                                      errbackArgs=("userdb",))
        LOOKUPS.labels("other", "not_found").inc()
        return None

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
        return json.dumps(result.fields)

    def _userdb_reply(self, fields):
        LAST_SUCCESS.set_to_current_time()
        LOOKUPS.labels("userdb", "found" if fields else "not_found").inc()
        return json.dumps(fields) if fields else None

    @staticmethod
    def _failed(failure, db):
        """Count it; core/dictproto.py answers `F` and logs what needs a log."""
        LOOKUPS.labels(db, "failed").inc()
        return failure

    def iterate(self, path: str, user: str, flags: int, max_rows: int):
        if path != USERDB_PREFIX:
            return ()
        d = self.pool.run(lambda: [(USERDB_PREFIX + a, "") for a in self.policy.users()])
        return timed(d, LATENCY.labels("iterate")).addErrback(self._failed, "iterate")
