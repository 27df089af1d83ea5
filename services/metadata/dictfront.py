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
token or an unknown key fails the whole transaction with `F` and a reason;
a store failure (a `Temporary`) is answered `F` by core/dictproto.py.
Token lookups run on the reactor thread (core/inline.py: files inline,
Redis on its reactor-side client); commits, which write durably, in the
thread pool. A delivery (`messagenew`) to an address without live tokens
writes nothing: its tokens are read the way lookups read them, and the
commit is answered without the pool.
"""

from prometheus_client import Counter

from ..core.addresses import address_refusal
from ..core.dictproto import DictFailure, DictHandler
from ..core.inline import then
from .policy import NoAccount, Op, check_token
from .serverkeys import SERVER_PREFIX

TOKEN_OPS = Counter("chatmail_metadata_token_changes_total", "Device token changes",
                    ["op", "result"])
MESSAGES = Counter("chatmail_metadata_messagenew_total", "New-message events from Dovecot")


def _tokens_text(tokens):
    return " ".join(tokens) or None


class MetadataDict(DictHandler):
    def __init__(self, config, policy, server_keys, notifier, pool, clock, reads=None):
        self.config = config
        self.policy = policy
        self.server_keys = server_keys
        self.notifier = notifier
        self.pool = pool
        self.clock = clock
        self.reads = policy.store if reads is None else reads  # `get_tokens`, core/inline.py

    def _addr(self, user: str) -> str:
        refused = address_refusal(user, self.config.mail_domain)
        if refused is not None:
            raise DictFailure(f"not an account of this relay: {refused}")
        return user

    def lookup(self, key: str, user: str):
        match key.split("/", 2):
            case ["priv", _, "devicetoken"]:
                tokens = self.reads.get_tokens(self._addr(user), self.clock.seconds(),
                                               self.policy.max_age)
                return then(tokens, _tokens_text)
            case ["shared", _, name] if name.startswith(SERVER_PREFIX):
                return self.server_keys.lookup(name[len(SERVER_PREFIX):])
        return None

    def commit(self, user: str, changes):
        ops = [self._op(change) for change in changes]
        ops = [op for op in ops if op is not None]
        if not ops:
            return None
        addr, now = self._addr(user), self.clock.seconds()
        if all(op.kind == "messagenew" for op in ops):
            # A delivery: an address without live tokens has nothing to queue,
            # which its tokens' read (where reads run) tells without the pool.
            tokens = self.reads.get_tokens(addr, now, self.policy.max_age)
            return then(tokens, self._deliver, addr, ops, now)
        return self._apply(addr, ops, now)

    def _deliver(self, tokens, addr, ops, now):
        if tokens:
            return self._apply(addr, ops, now, tokens)  # not read again there
        self._applied(0, ops)
        return None

    def _apply(self, addr, ops, now, live=None):
        """The ops in the pool, durably; the commit's answer waits for them."""
        d = self.pool.run(self.policy.apply, addr, ops, now, live)
        d.addCallback(self._applied, ops)
        return d.addErrback(self._no_account)

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

    @staticmethod
    def _no_account(failure):
        failure.trap(NoAccount)
        raise DictFailure(str(failure.value))
