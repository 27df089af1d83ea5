"""metadata's dict front-end: Dovecot 2.3 `mail_attribute_dict` (IMAP METADATA).

Keys (Dovecot prefixes a mailbox GUID we do not need: tokens are per address):

    priv/<guid>/devicetoken      lookup: the address's live tokens, space-separated | N
                                 set: add a token; unset (SETMETADATA ... NIL): remove all
    priv/<guid>/messagenew       set by conf/dovecot/chatmail-push.lua on delivery:
                                 queue one notification per token
    shared/<guid>/vendor/vendor.dovecot/pvt/server/vendor/deltachat/<name>
                                 lookup: a server capability key (serverkeys.py)

The transaction's user (`B<id>\\t<user>`) is the address. A commit is answered
`O` only when its changes are on disk (notifications included); a refused
token or an unknown key fails the whole transaction with `F` and a reason.
"""

from prometheus_client import Counter
from twisted.logger import Logger

from ..core.addresses import BadAddress, check_address
from ..core.dictproto import DictFailure, DictHandler
from .push import NoAccount, Op, check_token
from .serverkeys import SERVER_PREFIX

TOKEN_OPS = Counter("chatmail_metadata_token_changes_total", "Device token changes",
                    ["op", "result"])
MESSAGES = Counter("chatmail_metadata_messagenew_total", "New-message events from Dovecot")


class MetadataDict(DictHandler):
    log = Logger()

    def __init__(self, config, policy, server_keys, notifier, pool, clock):
        self.config = config
        self.policy = policy
        self.server_keys = server_keys
        self.notifier = notifier
        self.pool = pool
        self.clock = clock

    def _addr(self, user: str) -> str:
        try:
            return check_address(user, self.config.mail_domain)
        except BadAddress as e:
            raise DictFailure(f"not an account of this relay: {e}") from None

    def lookup(self, key: str, user: str):
        match key.split("/", 2):
            case ["priv", _, "devicetoken"]:
                d = self.pool.run(self.policy.tokens, self._addr(user), self.clock.seconds())
                return d.addCallback(lambda tokens: " ".join(tokens) or None)
            case ["shared", _, name] if name.startswith(SERVER_PREFIX):
                return self.server_keys.lookup(name[len(SERVER_PREFIX):])
        return None

    def commit(self, user: str, changes):
        ops = [self._op(change) for change in changes]
        ops = [op for op in ops if op is not None]
        if not ops:
            return None
        d = self.pool.run(self.policy.apply, self._addr(user), ops, self.clock.seconds())
        return d.addCallbacks(self._applied, self._failed, callbackArgs=(ops,),
                              errbackArgs=(ops,))

    def _op(self, change):
        """The domain op of one change, None to ignore it, DictFailure to refuse."""
        match change.op, change.key.split("/", 2):
            case "set", ["priv", _, "devicetoken"]:
                refusal = check_token(change.value, self.config.metadata.max_token_length)
                if refusal is not None:
                    TOKEN_OPS.labels("add", "refused").inc()
                    raise DictFailure(refusal.value)
                return Op("add", change.value)
            case "unset", ["priv", _, "devicetoken"]:
                return Op("clear")
            case "set", ["priv", _, "messagenew"]:
                return Op("messagenew")
            case "unset", ["priv", _, "messagenew"]:
                return None  # nothing was delivered
        raise DictFailure(f"cannot {change.op} this key: only devicetoken may be changed")

    def _applied(self, queued, ops):
        for op in ops:
            if op.kind == "messagenew":
                MESSAGES.inc()
            else:
                TOKEN_OPS.labels(op.kind, "ok").inc()
        if queued:
            self.notifier.wake()

    def _failed(self, failure, ops):
        if failure.check(NoAccount):
            raise DictFailure(str(failure.value))
        self.log.failure("metadata transaction failed", failure)
        raise DictFailure("temporary failure, try again later")
