"""The ESMTP server side of filtermail: what Postfix's filter clients speak to it.

Postfix hands mail to a filter with its SMTP client: ``smtpd_proxy_filter``
(before-queue, SMTPD_PROXY_README) or ``content_filter`` with an ``smtp``
transport (after-queue, FILTER_README). This protocol speaks the part of
RFC 5321 they use: EHLO/HELO, MAIL and RCPT with ESMTP parameters (kept
verbatim so reinjection can pass them on), XFORWARD (Postfix's
XFORWARD_README), DATA, RSET, NOOP, QUIT, any number of transactions per
connection, the null sender ``<>``, and pipelined commands.

It is our own small protocol rather than ``twisted.mail.smtp.ESMTP`` because
that server drops ESMTP parameters, has no XFORWARD, buffers DATA line by
line with no size limit and answers 550 when end-of-message handling fails
(twisted#4904). Here DATA is read in raw mode: the end marker is searched in
whole chunks, the excess over ``max_message_size`` is counted and discarded
(552 5.3.4 at the end, RFC 3463), and the message is handed to the handler
undecoded (8-bit bytes are data) with dot-stuffing undone (RFC 5321 section
4.5.2).

``handler.check_mail(addr, params)`` answers MAIL FROM: None to accept, a
refusal (`core.failures.Refused`, or a `smtp.Reply`), or a Deferred of either
(input waits meanwhile). ``handler.check_rcpt(addr, params)`` answers RCPT:
None or a refusal, at once. ``handler.deliver(envelope, message)`` returns a
Deferred of a Refused or of Postfix's reply to the reinjection. `_answer` is
the one place where an answer becomes a reply (`smtp.reply_for`) and a
failure a ``451 4.3.0`` (`smtp.temporary`): the client keeps the message and
retries, nothing is lost.
"""

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin

from .mail import Envelope
from .smtp import (
    REPLIES, TEMPFAIL, TOO_BIG, DataReader, Reply, no_delay, reply_for, temporary, unstuff,
)


class SyntaxProblem(Exception):
    """A command argument that cannot be parsed; `reply` is the 501 to send."""

    def __init__(self, key: str, **fields):
        self.reply = REPLIES[key].filled(**fields)
        super().__init__(self.reply.text)


def parse_path(arg: str, keyword: str):
    """Parse ``FROM:<addr> PARAMS`` / ``TO:<addr> PARAMS``: (address, params)."""
    head, sep, rest = arg.partition(":")
    if not sep or head.strip().upper() != keyword:
        raise SyntaxProblem("path-syntax", keyword=keyword)
    rest = rest.lstrip()
    if rest.startswith("<"):
        end = _closing_bracket(rest)
        if end < 0:
            raise SyntaxProblem("address-syntax")
        addr, params = rest[1:end], rest[end + 1:]
        if params and not params[0].isspace():
            raise SyntaxProblem("address-syntax")
    else:  # tolerated, like Postfix's default (strict_rfc821_envelopes = no)
        addr, _, params = rest.partition(" ")
    return addr.strip(), tuple(params.split())


def _closing_bracket(text: str) -> int:
    quoted = False
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return i
    return -1


def param_value(params, name: str):
    """The value of ESMTP parameter `name` (case-insensitive), or None."""
    prefix = name.upper() + "="
    for param in params:
        if param.upper().startswith(prefix):
            return param[len(prefix):]
    return None


class SMTPServer(LineReceiver, TimeoutMixin):
    """One filter connection from Postfix. `handler` decides; see module docstring."""

    log = Logger()
    delimiter = b"\r\n"
    MAX_LENGTH = 8192  # far above Postfix's lines (XFORWARD values are capped at 255)
    MAX_RECIPIENTS = 1000  # Postfix's smtpd_recipient_limit default
    IDLE_TIMEOUT = 300

    def __init__(self, handler, hostname: str, max_message_size: int):
        self.handler = handler
        self.hostname = hostname
        self.max_message_size = max_message_size
        self.helo = None
        self.envelope = None
        self.xforward = []
        self.reader = None
        self.closed = False

    def connectionMade(self):
        no_delay(self.transport)
        self.setTimeout(self.IDLE_TIMEOUT)
        self.send(REPLIES["greeting"].filled(hostname=self.hostname))

    def connectionLost(self, reason=None):
        """Everything of this connection ends with it: the idle timer (else the
        reactor keeps the protocol, and its last message, for IDLE_TIMEOUT),
        the transaction, buffered input; an answer still on its way is dropped."""
        self.closed = True
        self.setTimeout(None)
        self.envelope, self.reader, self.xforward = None, None, []
        self.clearLineBuffer()
        super().connectionLost(reason)

    def timeoutConnection(self):
        self.send(REPLIES["timeout"])
        self.transport.loseConnection()

    def send(self, reply: Reply) -> None:
        self.transport.write(reply.encode())

    def lineLengthExceeded(self, line):
        self.send(REPLIES["line-too-long"])
        self.transport.loseConnection()

    # -- command mode ------------------------------------------------------
    def lineReceived(self, line: bytes):
        self.resetTimeout()
        text = line.decode("utf-8", "surrogateescape")
        verb, _, arg = text.partition(" ")
        command = getattr(self, "smtp_" + verb.upper(), None) if verb.isalpha() else None
        if command is None:
            return self.send(REPLIES["unknown-command"])
        try:
            command(arg.strip())
        except SyntaxProblem as problem:
            self.send(problem.reply)

    def smtp_EHLO(self, arg):
        self._greeted(arg)
        extensions = ["PIPELINING", f"SIZE {self.max_message_size}", "8BITMIME",
                      "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN",
                      "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"]
        self.send(Reply(250, "\n".join([self.hostname] + extensions)))

    def smtp_HELO(self, arg):
        self._greeted(arg)
        self.send(Reply(250, self.hostname))

    def _greeted(self, arg):
        if not arg:
            raise SyntaxProblem("helo-syntax")
        self.helo = arg
        self._reset()

    def smtp_XFORWARD(self, arg):
        if self.envelope is not None:
            return self.send(REPLIES["in-transaction"])
        attributes = arg.split()
        if not attributes or not all("=" in a for a in attributes):
            raise SyntaxProblem("xforward-syntax")
        self.xforward.extend(attributes)
        self.send(REPLIES["ok"])

    def smtp_MAIL(self, arg):
        if self.helo is None:
            return self.send(REPLIES["need-helo"])
        if self.envelope is not None:
            return self.send(REPLIES["nested-mail"])
        addr, params = parse_path(arg, "FROM")
        size = param_value(params, "SIZE")
        if size is not None and size.isdigit() and int(size) > self.max_message_size:
            return self.send(TOO_BIG)
        checked = self.handler.check_mail(addr, params)
        if not isinstance(checked, defer.Deferred):
            return self._mail_checked(checked, addr, params)
        self.pauseProducing()  # pipelined RCPT and DATA wait for this answer
        checked.addErrback(self._failed, "MAIL FROM check")
        checked.addCallback(self._mail_checked, addr, params)
        checked.addCallback(self._resume)

    def _mail_checked(self, refusal, addr, params):
        if refusal is not None:
            return self._answer(refusal)
        self.envelope = Envelope(addr, params, xforward=tuple(self.xforward), helo=self.helo)
        self.send(REPLIES["mail-ok"])

    def smtp_RCPT(self, arg):
        if self.envelope is None:
            return self.send(REPLIES["need-mail"])
        if len(self.envelope.rcpts) >= self.MAX_RECIPIENTS:
            return self.send(REPLIES["too-many-recipients"])
        addr, params = parse_path(arg, "TO")
        if not addr:
            raise SyntaxProblem("rcpt-syntax")
        refusal = self.handler.check_rcpt(addr, params)
        if refusal is not None:
            return self._answer(refusal)
        self.envelope.rcpts.append((addr, params))
        self.send(REPLIES["rcpt-ok"])

    def smtp_DATA(self, arg):
        if self.envelope is None or not self.envelope.rcpts:
            return self.send(REPLIES["need-rcpt"])
        self.send(REPLIES["go-ahead"])
        self.reader = DataReader(self.max_message_size)
        self.setRawMode()

    def smtp_RSET(self, arg):
        self._reset()
        self.send(REPLIES["ok"])

    def smtp_NOOP(self, arg):
        self.send(REPLIES["ok"])

    def smtp_VRFY(self, arg):
        self.send(REPLIES["vrfy"])

    def smtp_QUIT(self, arg):
        self.send(REPLIES["bye"])
        self.transport.loseConnection()

    def _reset(self):
        self.envelope = None
        self.xforward = []

    # -- DATA ----------------------------------------------------------------
    def rawDataReceived(self, data: bytes):
        self.resetTimeout()
        rest = self.reader.feed(data)
        if rest is None:
            return
        reader, envelope = self.reader, self.envelope
        self.reader = None
        self._reset()
        self.pauseProducing()  # one transaction at a time; pipelined input waits
        self.setTimeout(None)
        self.setLineMode(rest)
        if reader.too_big:
            return self._data_done(TOO_BIG)
        d = defer.maybeDeferred(self.handler.deliver, envelope, unstuff(reader.buffer))
        d.addErrback(self._failed, "end of message handling")
        d.addCallback(self._data_done)

    def _data_done(self, answer):
        self._answer(answer)
        self._resume()

    def _resume(self, _=None):
        """Read on after an answer that came later; nothing once the connection is gone."""
        if self.closed:
            return
        self.setTimeout(self.IDLE_TIMEOUT)
        self.resumeProducing()

    def _failed(self, failure, what):
        return temporary(self.log, failure, what)

    def _answer(self, answer):
        """Send the reply for the handler's answer (see the module docstring)."""
        if self.closed:
            return
        reply = reply_for(answer)
        if reply is None:
            self.log.error("handler answered {answer!r}; answering 451", answer=answer)
            reply = TEMPFAIL
        self.send(reply)


class SMTPFactory(Factory):
    noisy = False

    def __init__(self, handler, hostname: str, max_message_size: int):
        self.handler = handler
        self.hostname = hostname
        self.max_message_size = max_message_size

    def buildProtocol(self, addr):
        return SMTPServer(self.handler, self.hostname, self.max_message_size)
