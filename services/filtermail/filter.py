"""The filter of one direction: what `server.SMTPServer` asks at MAIL FROM and after DATA.

MAIL FROM: the per-sender send rate limit, before any data is sent. The store
counts the message (`check_send_rate`, GCRA): on the files store in memory,
at once; otherwise in Redis, shared by every filtermail, in the thread pool.
Over the limit is refused "rate-limited" (450 with the retry time), and a
store that cannot answer is refused "rate-unknown" (451): Postfix keeps the
mail and retries, nobody sends unlimited while Redis is down, and an outage
the store logged is not logged again per message.

After DATA: the message is parsed once into a `mail.Mail` and judged by the
policy of its direction in the thread pool (the check is CPU-bound and the
store blocks); an outgoing message under `inline_max` is parsed, judged and
its Subject replaced on the reactor thread instead, where that work costs
less than the thread hops around it (bench/README.md). Then for incoming mail
the DKIM check (cheap checks first), for outgoing mail the Subject's
replacement by ``[...]`` (`subject`) and the DKIM signing over the result,
and what is accepted is reinjected. The answer is a `Refused` or Postfix's
reply to the reinjection; the server turns it into the SMTP reply, and any
exception (a failed reinjection, a store that cannot say) into ``451 4.3.0``.

Metrics count messages by direction, result and the verdict's reason token;
logs carry reasons and sizes at info level, addresses only at debug level.
"""

from prometheus_client import Counter, Histogram
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..core.addresses import address_refusal
from ..core.failures import Refused
from .mail import Mail
from .policy import Incoming, Outgoing, incoming_verdict, outgoing_verdict, recipient_refusal
from .reinject import ReinjectError
from .smtp import REPLIES, retry_text, temporary

MESSAGES = Counter("chatmail_filtermail_messages_total",
                   "Messages judged by filtermail", ["direction", "result", "reason"])
RATE_LIMITED = Counter("chatmail_filtermail_rate_limited_total",
                       "MAIL FROM refused by the per-sender rate limit")
RATE_UNKNOWN = Counter("chatmail_filtermail_rate_check_failures_total",
                       "MAIL FROM answered 451 because the rate limit could not be checked")
REINJECT_FAILURES = Counter("chatmail_filtermail_reinject_failures_total",
                            "Accepted messages answered 451 because reinjection failed",
                            ["direction"])
RCPT_REFUSED = Counter("chatmail_filtermail_recipients_refused_total",
                       "RCPT TO refused for good: never a mailbox here", ["reason"])
SECONDS = Histogram("chatmail_filtermail_message_seconds",
                    "End of DATA to reply, per message", ["direction"])


def outgoing_judge(config):
    fm = config.filtermail
    policy = Outgoing.of(config.mail_domain, fm.passthrough_senders,
                         fm.passthrough_recipients)
    return lambda mail: outgoing_verdict(mail, policy)


def incoming_judge(config, store):
    def enforces_e2ee(addr):
        if address_refusal(addr, config.mail_domain):
            return False  # not one of our accounts: nobody asked for encryption
        return store.enforces_e2ee_incoming(addr)

    policy = Incoming(enforces_e2ee)
    return lambda mail: incoming_verdict(mail, policy)


def incoming_recipients(config):
    """The RCPT check of incoming mail: no recipient that can never be a mailbox."""
    return lambda rcpt: recipient_refusal(rcpt, config.mail_domain)


class SendRateLimit:
    """The configured limit on the store's buckets (`SendRate.check_send_rate`)."""

    def __init__(self, store, per_minute: float, burst: int):
        self.store = store
        self.per_minute = per_minute
        self.burst = burst

    @classmethod
    def from_config(cls, config, store) -> "SendRateLimit":
        fm = config.filtermail
        return cls(store, fm.max_user_send_per_minute, fm.max_user_send_burst_size)

    @property
    def blocking(self) -> bool:
        """Whether `check` may wait on the network (Redis): then it runs in the pool."""
        return getattr(self.store, "blocking", True)

    def check(self, sender: str, now: float):
        """(allowed, seconds until retry); may block (Redis), raises when the store cannot say."""
        return self.store.check_send_rate(sender, now, self.per_minute, self.burst)


def _now(fn, *args):
    return fn(*args)


def _parse_and_judge(envelope, message, judge):
    """The work after DATA, in the pool or (small outgoing mail) inline: parse the
    message once, then judge it."""
    mail = Mail(envelope, message)
    return mail, judge(mail)


BIG_MESSAGE = 1 << 20
# Outgoing messages below this size are checked on the reactor thread: two thread
# hops cost more than parsing a small message, and pure Python work gains no
# parallelism from threads. Larger ones, whose parsing takes milliseconds, keep
# the pool, so the reactor keeps serving every other connection meanwhile.
INLINE_MAX = 64 << 10


class FilterHandler:
    log = Logger()

    def __init__(self, direction, judge, pool, reinject, clock,
                 limiter=None, verifier=None, signer=None, rewrite=None, recipients=None,
                 after_big=None, inline_max=0):
        self.direction = direction
        self.judge = judge
        self.pool = pool
        self.reinject = reinject
        self.clock = clock
        self.limiter = limiter
        self.verifier = verifier
        self.signer = signer
        self.rewrite = rewrite  # (verdict, mail) -> mail, before signing
        self.recipients = recipients  # rcpt -> None or a Refused, at RCPT
        self.after_big = after_big  # called after a message of BIG_MESSAGE bytes or more
        self.inline_max = inline_max  # judge and rewrite of smaller messages: no pool

    def check_mail(self, addr: str, params):
        """None to accept MAIL FROM, the refusal, or a Deferred firing with either."""
        if self.limiter is None or not addr:
            return None
        now = self.clock.seconds()
        if not getattr(self.limiter, "blocking", True):  # in memory: answered now
            try:
                return self._rate_checked(self.limiter.check(addr, now))
            except Exception:
                return self._rate_unknown(Failure())
        d = self.pool.run(self.limiter.check, addr, now)
        return d.addCallbacks(self._rate_checked, self._rate_unknown)

    def check_rcpt(self, addr: str, params):
        """None to accept RCPT TO, or the refusal."""
        if self.recipients is None:
            return None
        refusal = self.recipients(addr)
        if refusal is not None:
            RCPT_REFUSED.labels(refusal.reason).inc()
        return refusal

    def _rate_checked(self, result):
        allowed, retry_after = result
        if allowed:
            return None
        RATE_LIMITED.inc()
        self.log.info("{direction}: sender rate limited for {retry:.0f}s",
                      direction=self.direction, retry=retry_after)
        return Refused("rate-limited", retry_text(retry_after))

    def _rate_unknown(self, failure):
        RATE_UNKNOWN.inc()
        temporary(self.log, failure, f"{self.direction}: send rate check",
                  REPLIES["rate-unknown"])
        return Refused("rate-unknown")

    def deliver(self, envelope, message) -> defer.Deferred:
        started = self.clock.seconds()
        d = self._deliver(envelope, message)

        def observe(result):
            SECONDS.labels(self.direction).observe(self.clock.seconds() - started)
            if self.after_big is not None and len(message) >= BIG_MESSAGE:
                self.after_big()  # e.g. core/memory.py's Trimmer: RSS back near idle
            return result
        return d.addBoth(observe)

    @defer.inlineCallbacks
    def _deliver(self, envelope, message):
        # a plain value when run here: `yield` hands it straight back
        run = _now if len(message) < self.inline_max else self.pool.run
        mail, verdict = yield run(_parse_and_judge, envelope, message, self.judge)
        if not isinstance(verdict, Refused) and self.verifier is not None:
            verdict = yield self.verifier.check(mail)
        self._record(mail, verdict)
        if isinstance(verdict, Refused):
            return verdict
        if self.rewrite is not None:
            mail = yield run(self.rewrite, verdict, mail)
        signature = b""
        if self.signer is not None:
            signature = yield self.pool.run(self.signer.sign, mail)
        try:
            reply = yield self.reinject.deliver(mail, signature)
        except ReinjectError as e:
            REINJECT_FAILURES.labels(self.direction).inc()
            self.log.warn("{direction}: reinjection failed, answering 451: {why}",
                          direction=self.direction, why=str(e))
            e.logged = True
            raise
        return reply

    def _record(self, mail, verdict):
        result = "refused" if isinstance(verdict, Refused) else "accepted"
        MESSAGES.labels(self.direction, result, verdict.reason).inc()
        self.log.info("{direction}: {result} ({reason}), {size} bytes, {rcpts} rcpt(s)",
                      direction=self.direction, result=result, reason=verdict.reason,
                      size=len(mail), rcpts=len(mail.recipients))
        self.log.debug("{direction}: from {sender} to {rcpts}: {reason} {detail}",
                       direction=self.direction, sender=mail.sender or "<>",
                       rcpts=",".join(mail.recipients), reason=verdict.reason,
                       detail=getattr(verdict, "text", ""))
