"""The filter of one direction: envelope and message in, SMTP reply out.

`FilterHandler` is what `smtpserver.SMTPServer` calls. It runs the pure
verdict of its direction in the thread pool (the check is CPU-bound and the
store blocks), then for incoming mail the DKIM check (cheap checks first),
for outgoing mail the Subject's replacement by ``[...]`` (subject.py) and
the DKIM signing over the result, and reinjects what is accepted. A
refusal becomes the verdict's reply; a reinjection that fails becomes
``451 4.3.0``; any other exception reaches the server, which answers 451
too. Rate limiting happens at MAIL FROM, before any data is sent: the
store counts the message in the thread pool (a Redis round trip when the
limit is shared), and a store that cannot answer makes MAIL FROM ``451
4.3.0``: Postfix keeps the mail and retries, nobody sends unlimited while
Redis is down, and the outage is logged once by the store, not per message.

Metrics count messages by direction, result and the verdict's reason token;
logs carry reasons and sizes at info level, addresses only at debug level.
"""

from prometheus_client import Counter, Histogram
from twisted.internet import defer
from twisted.logger import Logger

from ..core.addresses import BadAddress, check_address
from ..core.store import StoreError, StoreUnavailable
from .ratelimit import rate_limit_text
from .reinject import ReinjectError
from .smtpserver import TEMPFAIL, Reply
from .verdicts import incoming_verdict, outgoing_verdict

MESSAGES = Counter("chatmail_filtermail_messages_total",
                   "Messages judged by filtermail", ["direction", "result", "reason"])
RATE_LIMITED = Counter("chatmail_filtermail_rate_limited_total",
                       "MAIL FROM refused by the per-sender rate limit")
RATE_UNKNOWN = Counter("chatmail_filtermail_rate_check_failures_total",
                       "MAIL FROM answered 451 because the rate limit could not be checked")
RATE_UNKNOWN_REPLY = Reply(451, "4.3.0 Error: cannot check the sender's send rate now, "
                                "try again later")
REINJECT_FAILURES = Counter("chatmail_filtermail_reinject_failures_total",
                            "Accepted messages answered 451 because reinjection failed",
                            ["direction"])
SECONDS = Histogram("chatmail_filtermail_message_seconds",
                    "End of DATA to reply, per message", ["direction"])


def outgoing_judge(config):
    fm = config.filtermail

    def judge(envelope, message):
        return outgoing_verdict(envelope.mail_from, envelope.rcpt_tos, message,
                                passthrough_senders=fm.passthrough_senders,
                                passthrough_recipients=fm.passthrough_recipients,
                                mail_domain=config.mail_domain)
    return judge


def incoming_judge(config, store):
    def enforces_e2ee(addr):
        try:
            check_address(addr, config.mail_domain)
        except BadAddress:  # not one of our accounts: nobody asked for encryption
            return False
        return store.enforces_e2ee_incoming(addr)

    def judge(envelope, message):
        return incoming_verdict(envelope.mail_from, envelope.rcpt_tos, message, enforces_e2ee)
    return judge


class FilterHandler:
    log = Logger()

    def __init__(self, direction, judge, pool, reinject, clock,
                 limiter=None, verifier=None, signer=None, rewrite=None):
        self.direction = direction
        self.judge = judge
        self.pool = pool
        self.reinject = reinject
        self.clock = clock
        self.limiter = limiter
        self.verifier = verifier
        self.signer = signer
        self.rewrite = rewrite  # (verdict, message) -> message, before signing

    def check_mail(self, addr: str, params):
        """None to accept MAIL FROM, or the refusal Reply (rate limit), or a
        Deferred firing with either."""
        if self.limiter is None or not addr:
            return None
        d = self.pool.run(self.limiter.check, addr, self.clock.seconds())
        return d.addCallbacks(self._rate_checked, self._rate_unknown)

    def _rate_checked(self, result):
        allowed, retry_after = result
        if allowed:
            return None
        RATE_LIMITED.inc()
        self.log.info("{direction}: sender rate limited for {retry:.0f}s",
                      direction=self.direction, retry=retry_after)
        return Reply(450, rate_limit_text(retry_after))

    def _rate_unknown(self, failure):
        RATE_UNKNOWN.inc()
        if failure.check(StoreUnavailable):
            pass  # the store logs the outage once
        elif failure.check(StoreError):
            self.log.warn("{direction}: cannot check the send rate, answering 451: {why}",
                          direction=self.direction, why=failure.value)
        else:
            self.log.failure("{direction}: send rate check failed, answering 451",
                             failure, direction=self.direction)
        return RATE_UNKNOWN_REPLY

    def deliver(self, envelope, message) -> defer.Deferred:
        started = self.clock.seconds()
        d = self._deliver(envelope, message)

        def observe(result):
            SECONDS.labels(self.direction).observe(self.clock.seconds() - started)
            return result
        return d.addBoth(observe)

    @defer.inlineCallbacks
    def _deliver(self, envelope, message):
        verdict = yield self.pool.run(self.judge, envelope, message)
        if verdict.accept and self.verifier is not None:
            verdict = yield self.verifier.check(message)
        self._record(envelope, message, verdict)
        if not verdict.accept:
            return Reply(verdict.code, verdict.text)
        if self.rewrite is not None:
            message = self.rewrite(verdict, message)
        parts = [message]
        if self.signer is not None:
            parts.insert(0, (yield self.pool.run(self.signer.sign, message)))
        try:
            reply = yield self.reinject.deliver(envelope, parts)
        except ReinjectError as e:
            REINJECT_FAILURES.labels(self.direction).inc()
            self.log.warn("{direction}: reinjection failed, answering 451: {why}",
                          direction=self.direction, why=str(e))
            return TEMPFAIL
        return reply

    def _record(self, envelope, message, verdict):
        result = "accepted" if verdict.accept else "refused"
        MESSAGES.labels(self.direction, result, verdict.reason).inc()
        self.log.info("{direction}: {result} ({reason}), {size} bytes, {rcpts} rcpt(s)",
                      direction=self.direction, result=result, reason=verdict.reason,
                      size=len(message), rcpts=len(envelope.rcpts))
        self.log.debug("{direction}: from {sender} to {rcpts}: {reason} {detail}",
                       direction=self.direction, sender=envelope.mail_from or "<>",
                       rcpts=",".join(envelope.rcpt_tos), reason=verdict.reason,
                       detail=verdict.detail)
