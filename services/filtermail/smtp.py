"""SMTP on the wire for filtermail: replies, message data framing, sockets.

Both ends of filtermail speak SMTP: the server Postfix's filter client talks
to (`server`) and the client that reinjects into Postfix (`reinject`). What
they share lives here, and nothing here decides policy:

- `Reply` and `REPLIES`, every reply filtermail's server sends, in one table:
  the session's and commands' replies, and the message's, keyed by the stable
  reason token the domain returns (`core.failures.Refused.reason`);
  `reply_for` is the one map from a domain answer to the wire, `temporary`
  the one map from a failure (always 4xx: Postfix keeps the mail and
  retries, RFC 5321 section 4.2.1);
- message data (RFC 5321 section 4.5.2): the end marker and dot-stuffing, in
  both directions (`DataReader`, `unstuff`; `dot_stuff`, `stuffed_parts`);
- `no_delay` for both ends' sockets.

Enhanced status codes follow RFC 3463.
"""

import math
from dataclasses import dataclass

from ..core.failures import Refused, Temporary


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    def encode(self) -> bytes:
        lines = self.text.split("\n")
        out = [f"{self.code}-{line}" for line in lines[:-1]] + [f"{self.code} {lines[-1]}"]
        return "".join(line + "\r\n" for line in out).encode("utf-8", "surrogateescape")

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    def filled(self, **fields) -> "Reply":
        """This reply with the {fields} in its text filled in."""
        return Reply(self.code, self.text.format(**fields))


# Every reply of filtermail's server but EHLO's list of extensions.
REPLIES = {
    # the session and its commands (server.py)
    "greeting": Reply(220, "{hostname} ESMTP chatmail filtermail"),
    "ok": Reply(250, "2.0.0 Ok"),
    "mail-ok": Reply(250, "2.1.0 Ok"),
    "rcpt-ok": Reply(250, "2.1.5 Ok"),
    "vrfy": Reply(252, "2.0.0 Send some mail, I'll try my best"),
    "go-ahead": Reply(354, "End data with <CR><LF>.<CR><LF>"),
    "bye": Reply(221, "2.0.0 Bye"),
    "timeout": Reply(421, "4.4.2 Error: timeout exceeded"),
    "too-many-recipients": Reply(452, "4.5.3 Error: too many recipients"),
    "line-too-long": Reply(500, "5.5.0 Error: line too long"),
    "unknown-command": Reply(502, "5.5.2 Error: command not recognized"),
    "need-helo": Reply(503, "5.5.1 Error: send HELO/EHLO first"),
    "nested-mail": Reply(503, "5.5.1 Error: nested MAIL command"),
    "in-transaction": Reply(503, "5.5.1 Error: MAIL transaction in progress"),
    "need-mail": Reply(503, "5.5.1 Error: need MAIL command"),
    "need-rcpt": Reply(503, "5.5.1 Error: need RCPT command"),
    # 501: a command's argument cannot be parsed
    "path-syntax": Reply(501, "5.5.4 Syntax: {keyword}:<address>"),
    "address-syntax": Reply(501, "5.1.7 Bad address syntax"),
    "rcpt-syntax": Reply(501, "5.1.3 Bad recipient address syntax"),
    # a recipient that can never be a mailbox here (policy.recipient_refusal)
    "bad-recipient": Reply(550, "5.1.1 Recipient address rejected: {text}"),
    "helo-syntax": Reply(501, "5.5.4 Syntax: EHLO hostname"),
    "xforward-syntax": Reply(501, "5.5.4 Syntax: XFORWARD attribute=value..."),
    # a message refused, by the refusal's reason token ("{text}": the refusal's
    # text): content (policy.py) and DKIM (dkimcheck.py) after DATA
    "cleartext": Reply(523, "Encryption Needed: Invalid Unencrypted Mail"),
    "from-invalid": Reply(550, "5.7.1 Message needs exactly one From header with one address"),
    "from-mismatch": Reply(550, "5.7.1 From header does not match envelope sender"),
    "foreign-sender": Reply(550, "5.7.1 Envelope sender is not an address of this relay"),
    "dkim-invalid": Reply(554, "5.7.1 No valid DKIM signature found"),
    "dkim-dns-failure": Reply(451, "4.4.3 Temporary DNS failure looking up the DKIM key, "
                                   "try again later"),
    "too-big": Reply(552, "5.3.4 Error: message file too big"),
    # the send rate limit, at MAIL FROM (filter.py)
    "rate-limited": Reply(450, "4.7.1 Rate limit exceeded: too much mail from this sender, "
                               "{text}"),
    "rate-unknown": Reply(451, "4.3.0 Error: cannot check the sender's send rate now, "
                               "try again later"),
    # anything else that went wrong: never a 5xx, never a lost message
    "temporary": Reply(451, "4.3.0 Error: queue file write error, try again later"),
}
TEMPFAIL = REPLIES["temporary"]
TOO_BIG = REPLIES["too-big"]


def reply_for(answer) -> Reply | None:
    """The wire reply for a handler's answer: a `Refused` through `REPLIES`, a
    `Reply` as it is (Postfix's own, passed on); None for anything else (a bug)."""
    if isinstance(answer, Reply):
        return answer
    if isinstance(answer, Refused) and answer.reason in REPLIES:
        try:
            return REPLIES[answer.reason].filled(text=answer.text)
        except KeyError:  # a command's reply, which needs other fields
            return None
    return None


def retry_text(seconds: float) -> str:
    """ "try again in 1 second": whole seconds rounded up, minutes from two minutes on."""
    seconds = max(1, math.ceil(seconds))
    if seconds >= 120:
        amount, unit = math.ceil(seconds / 60), "minute"
    else:
        amount, unit = seconds, "second"
    return f"try again in {amount} {unit}{'' if amount == 1 else 's'}"


def temporary(log, failure, what: str, reply: Reply = TEMPFAIL) -> Reply:
    """The one map from a failure to the wire: always a 4xx reply, logged once.

    A temporary failure (store, DNS, reinjection) is logged as one line unless
    it was logged where it happened (`logged`: the store reports an outage
    once); anything else is a bug and gets a traceback.
    """
    error = failure.value
    if not isinstance(error, Temporary):
        log.failure("{what} failed; answering {code}", failure, what=what, code=reply.code)
    elif not error.logged:
        log.warn("{what}: {why}; answering {code}", what=what, why=error, code=reply.code)
    return reply


def no_delay(transport):
    """Disable Nagle's algorithm: a small write (".\\r\\n", a reply) must not wait
    for the ACK of the previous one, which the peer delays by up to 40 ms."""
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        try:
            set_no_delay(True)
        except OSError:  # not a TCP socket after all
            pass


def unstuff(message: bytearray) -> bytearray:
    """Undo dot-stuffing (RFC 5321 section 4.5.2): a line's leading dot goes."""
    if message[:1] == b".":
        del message[0]
    if message.find(b"\r\n.") >= 0:
        message = message.replace(b"\r\n.", b"\r\n")
    return message


END_OF_DATA = b"\r\n.\r\n"


class DataReader:
    """Collect DATA chunks up to the end marker, keeping at most `limit` bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.buffer = bytearray()
        self.size = 0
        self.tail = b"\r\n"  # DATA starts at the beginning of a line

    @property
    def too_big(self) -> bool:
        return self.buffer is None

    def feed(self, chunk: bytes):
        """Take a chunk; return the bytes after the end marker, or None if not there yet."""
        window = self.tail + chunk
        marker = window.find(END_OF_DATA)
        if marker < 0:
            self._keep(chunk)
            self.tail = window[-4:]
            return None
        end = marker + 2 - len(self.tail)  # the CRLF before "." belongs to the message
        if end >= 0:
            self._keep(chunk[:end])
        elif self.buffer is not None:
            del self.buffer[end:]
        return window[marker + len(END_OF_DATA):]

    def _keep(self, data: bytes):
        self.size += len(data)
        if self.buffer is None:
            return
        if self.size > self.limit:
            self.buffer = None  # discard, keep only counting and looking for the end
        else:
            self.buffer += data


def dot_stuff(data, at_line_start: bool = True):
    """Double each leading dot (the inverse of unstuff)."""
    if data.find(b"\r\n.") >= 0:
        data = data.replace(b"\r\n.", b"\r\n..")
    if at_line_start and data[:1] == b".":
        data = b"." + data
    return data


def stuffed_parts(parts) -> list:
    """Dot-stuff consecutive parts of one message."""
    out, at_line_start = [], True
    for part in parts:
        if len(part):
            out.append(dot_stuff(part, at_line_start))
            at_line_start = part[-1:] == b"\n"
    return out
