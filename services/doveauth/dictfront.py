"""doveauth's dict front-end: Dovecot 2.3 `passdb`/`userdb { driver = dict }`.

Keys (conf/dovecot/chatmail-auth.conf.ext writes them with Dovecot's %E escaping):

    shared/passdb/<password>"<user>   -> JSON {password, home, uid, gid} | N
    shared/userdb/<user>              -> JSON {home, uid, gid} | N
    iterate shared/userdb/            -> one row per account (`doveadm user '*'`)

The answers come from lookups.AccountLookups (shared with the HTTP front-end
for Dovecot 2.4): reads on the reactor thread (files inline, Redis on its
reactor-side client, core/inline.py); a temporary failure (a `Temporary`) becomes `F` in
core/dictproto.py (Dovecot tells the client to try again), a refusal `N`.
"""

import json
from json.encoder import encode_basestring_ascii as _quoted

from ..core import dictcodec
from ..core.dictproto import DictFailure, DictHandler
from ..core.inline import then
from .lookups import AccountLookups

USERDB_PREFIX = "shared/userdb/"


def fields_json(fields):
    """`json.dumps(fields)` for the flat fields of an answer (None for none),
    the same text, a third of the cost: json.dumps builds an encoder per call."""
    if not fields:
        return None
    return "{" + ", ".join([_quoted(name) + ": " + (
        _quoted(value) if type(value) is str else json.dumps(value))
        for name, value in fields.items()]) + "}"

class AuthDict(DictHandler):
    def __init__(self, policy, pool, create_pool=None):
        self.lookups = AccountLookups(policy, pool, create_pool)

    def lookup(self, key: str, user: str):
        match key.split("/", 2):
            case ["shared", "passdb", rest]:
                password, addr = self._split(rest, 2)
                return self._reply(self.lookups.passdb(addr, password))
            case ["shared", "userdb", rest]:
                (addr,) = self._split(rest, 1)
                return self._reply(self.lookups.userdb(addr))
        self.lookups.count_other()
        return None

    @staticmethod
    def _split(rest: str, count: int):
        try:
            parts = dictcodec.split_auth_key(rest)
        except dictcodec.DictProtocolError as e:
            raise DictFailure(f"malformed key: {e}") from None
        if len(parts) != count:
            raise DictFailure("malformed key: wrong number of fields")
        return parts

    @staticmethod
    def _reply(answer):
        """JSON for Dovecot, now for a plain answer (an inline read), later for a Deferred."""
        return then(answer, fields_json)

    def iterate(self, path: str, user: str, flags: int, max_rows: int):
        if path != USERDB_PREFIX:
            return ()
        d = self.lookups.users()
        return d.addCallback(lambda addrs: [(USERDB_PREFIX + a, "") for a in addrs])
