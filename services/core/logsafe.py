"""Log lines a client cannot forge or flood.

The journal is what operators trust, and several peers can put text into it:
a dict client's dictionary name, keys and values, SMTP arguments. Two rules:

- `shown(text)`: client-supplied text is rendered escaped (a line break,
  any control or non-printable character becomes a visible `\\n`, `\\x00`,
  `\\udcff`) and bounded in length. The daemons' log emitter (core/runner.py)
  escapes every message the same way, so even text that reaches a log line
  another way cannot start a new line.
- `Repeated`: a warning a client can trigger again and again (a malformed
  line, a change of an unknown transaction) goes out at most once per kind
  and minute, with the number not logged since. Every occurrence is counted
  in `chatmail_client_warnings_total{kind}` (docs/metrics.md), so nothing is
  lost but the repetition. `kind` is a fixed token from the code, never
  client text (it is a metrics label).
"""

import math
import time

from prometheus_client import Counter

WARNINGS = Counter("chatmail_client_warnings_total",
                   "Warnings about what a client sent, logged or not "
                   "(repeats within a minute are counted, not logged)", ["kind"])

SHOWN_LENGTH = 64


def _escaped(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")


def escaped(text: str) -> str:
    """`text` unambiguous on one line: backslash, control and non-printable
    characters escaped."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escaped(c) for c in text)


def one_line(text: str) -> str:
    """`text` on one line: control and non-printable characters escaped (what
    the log emitter does to every message; a backslash stays as it is)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def shown(value, limit: int = SHOWN_LENGTH) -> str:
    """Client text fit for a log line: escaped, at most `limit` characters of it."""
    text = value if isinstance(value, str) else str(value)
    more = len(text) - limit
    return escaped(text[:limit]) + (f"...(+{more} characters)" if more > 0 else "")


class Repeated:
    """At most one log line per warning kind and `interval` seconds; all counted."""

    def __init__(self, interval: float = 60.0, clock=time.monotonic):
        self.interval = interval
        self.clock = clock
        self._quiet_until = {}  # kind -> when the next line may go out
        self._held = {}  # kind -> occurrences not logged since the last line

    def warn(self, log, kind: str, fmt: str, **fields) -> bool:
        """Log `fmt` at warn level unless `kind` was logged less than
        `interval` ago; count it either way. True when a line went out."""
        WARNINGS.labels(kind).inc()
        return self.log(log.warn, kind, fmt, **fields)

    def log(self, emit, kind: str, fmt: str, **fields) -> bool:
        """`emit(fmt, ...)` (a Logger method) unless `kind` went out less than
        `interval` ago; not counted here (for events with a metric of their own)."""
        now = self.clock()
        if now < self._quiet_until.get(kind, -math.inf):
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._quiet_until[kind] = now + self.interval
        held = self._held.pop(kind, 0)
        if held:
            fmt += " ({held} more like it not logged since the last one)"
        emit(fmt, held=held, **fields)
        return True


# One per process: the limit holds across connections.
REPEATED = Repeated()
