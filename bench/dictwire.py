"""A small asyncio client for the Dovecot dict protocol, for load generation.

It speaks only the wire protocol (docs/dict-protocol.md; Dovecot 2.3's
``src/lib-dict/dict-client.c`` is the peer it imitates), so it can drive any
implementation's socket: ours, the reference chatmaild daemons, or a stub.

Framing relies on ``StreamReader.readline``: a reply split across reads is
kept until its ``\\n`` arrives, and a reply cut off by EOF is an error, never a
half line taken for a whole one.
"""

import asyncio
from dataclasses import dataclass

READ_LIMIT = 1 << 20  # longest reply line we accept, in bytes

_ESCAPES = (("\x01", "\x011"), ("\t", "\x01t"), ("\r", "\x01r"), ("\n", "\x01n"))
_UNESCAPES = {"1": "\x01", "t": "\t", "r": "\r", "n": "\n"}

# Dovecot 2.3 and 2.4 differ in the hello line and the begin line's extra field.
HELLO = {"2.3": "H3\t2\t0\t\t{dict}\n", "2.4": "H4\t0\t0\t\t{dict}\n"}
BEGIN_TAIL = {"2.3": (), "2.4": ("0",)}


def tabescape(text):
    """Escape one field the way Dovecot's ``str_tabescape`` does."""
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text


def tabunescape(text):
    """Undo ``tabescape``; an unknown or dangling escape keeps its character."""
    head, *rest = text.split("\x01")
    parts = [head]
    for chunk in rest:
        if chunk:
            parts.append(_UNESCAPES.get(chunk[0], chunk[0]) + chunk[1:])
    return "".join(parts)


def percent_e(text):
    """Backslash-escape ``"``, ``'`` and ``\\`` like Dovecot's ``%E``."""
    return "".join("\\" + c if c in "\"'\\" else c for c in text)


def format_line(command, *fields):
    """One request line: a command letter glued to tab-escaped fields."""
    return (command + "\t".join(tabescape(f) for f in fields) + "\n").encode()


@dataclass(frozen=True)
class Lookup:
    key: str
    user: str
    # A text every O answer must hold, e.g. the account's home for its address:
    # an answer meant for another request counts as "wrong", not as an O.
    expect: str = ""


@dataclass(frozen=True)
class Transaction:
    user: str
    changes: tuple  # ((key, value), ...) sent as S lines, committed with C


@dataclass(frozen=True)
class Iterate:
    path: str
    user: str
    flags: int = 1  # DICT_ITERATE_FLAG_RECURSE
    max_rows: int = 0  # 0 = no limit


def parse_target(target):
    """``tcp:HOST:PORT``, ``unix:PATH`` or a bare path -> (kind, address)."""
    if target.startswith("tcp:"):
        host, _, port = target[4:].rpartition(":")
        return "tcp", (host.strip("[]") or "127.0.0.1", int(port))
    return "unix", target.removeprefix("unix:")


def reply_kind(line, expect=""):
    """Classify a reply line by its first character: O, N, F or other; an O
    without the text `expect` is "wrong"."""
    kind = line[:1]
    if kind == "O":
        return "wrong" if expect not in line else "O"
    return kind if kind in ("N", "F") else "other"


class DictClient:
    """One dict connection; one request in flight at a time (no pipelining)."""

    def __init__(self, reader, writer, version):
        self.reader = reader
        self.writer = writer
        self.version = version
        self.next_id = 1  # transaction ids; they repeat across connections

    @classmethod
    async def open(cls, target, dict_name, version="2.3"):
        """Connect and send the hello line (which gets no reply)."""
        kind, address = parse_target(target)
        if kind == "tcp":
            streams = await asyncio.open_connection(*address, limit=READ_LIMIT)
        else:
            streams = await asyncio.open_unix_connection(address, limit=READ_LIMIT)
        client = cls(*streams, version)
        client.writer.write(HELLO[version].format(dict=tabescape(dict_name)).encode())
        return client

    async def close(self, grace=1.0):
        """Close politely; abort if the peer does not let us flush in time."""
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), grace)
        except (OSError, asyncio.TimeoutError):  # reset or stuck peer: we are done anyway
            self.writer.transport.abort()

    async def read_line(self):
        """One reply line without its newline; EOF mid-line is an error."""
        line = await self.reader.readline()
        if not line.endswith(b"\n"):
            raise ConnectionError("connection closed before a full reply line")
        return line[:-1].decode("utf-8", "replace")

    async def perform(self, op):
        """Send one operation and consume its whole reply -> (kind, rows)."""
        match op:
            case Lookup(key=key, user=user, expect=expect):
                return await self._request(format_line("L", key, user), expect)
            case Transaction():
                return await self._transaction(op)
            case Iterate():
                return await self._iterate(op)
        raise TypeError(f"unknown operation {op!r}")

    async def _request(self, data, expect=""):
        self.writer.write(data)
        return reply_kind(await self.read_line(), expect), 0

    async def _transaction(self, op):
        tid = str(self.next_id)
        self.next_id += 1
        lines = [format_line("B", tid, op.user, *BEGIN_TAIL[self.version])]
        lines += [format_line("S", tid, key, value) for key, value in op.changes]
        lines.append(format_line("C", tid))
        # B and S get no reply; only the commit is answered.
        return await self._request(b"".join(lines))

    async def _iterate(self, op):
        """Rows ``O<key>\\t<value>`` until an empty line; ``F`` ends it early."""
        self.writer.write(format_line("I", str(op.flags), str(op.max_rows), op.path, op.user))
        rows = 0
        while True:
            line = await self.read_line()
            if not line:
                return ("O" if rows else "N"), rows
            if line.startswith("F"):
                return "F", rows
            rows += 1
