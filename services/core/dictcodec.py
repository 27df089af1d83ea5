"""Dovecot dict protocol: the pure codec (no I/O).

Spec: Dovecot's dict client (src/lib-dict/dict-client.[ch], 2.3 and 2.4), as
summarised in docs/dict-protocol.md. Lines end in LF; fields are separated by TAB and every
field is escaped with \\x01: \\x01 -> \\x011, TAB -> \\x01t, CR -> \\x01r,
LF -> \\x01n. Text is UTF-8; undecodable bytes survive as surrogates
(`surrogateescape`), because passwords and tokens are the client's bytes.
"""

from typing import NamedTuple, Optional, Tuple

_UNESCAPES = {"1": "\x01", "t": "\t", "r": "\r", "n": "\n"}


class DictProtocolError(ValueError):
    """A line that is not a well-formed dict command."""


def tabescape(text: str) -> str:
    # Most fields hold none of the four characters: four C-level scans.
    if "\x01" not in text and "\t" not in text and "\n" not in text and "\r" not in text:
        return text
    text = text.replace("\x01", "\x011")  # first: the escapes below add \x01
    return text.replace("\t", "\x01t").replace("\r", "\x01r").replace("\n", "\x01n")


def tabunescape(text: str) -> str:
    if "\x01" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\x01":
            nxt = text[i + 1:i + 2]
            if nxt not in _UNESCAPES:
                raise DictProtocolError("invalid \\x01 escape")
            out.append(_UNESCAPES[nxt])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def decode_line(line: bytes) -> str:
    return line.decode("utf-8", "surrogateescape")


def encode_line(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape") + b"\n"


class Command(NamedTuple):
    """One parsed request line: the command letter and its unescaped fields."""

    kind: str
    args: Tuple[str, ...]

    def arg(self, index: int, default: Optional[str] = None) -> Optional[str]:
        return self.args[index] if index < len(self.args) else default


# command letter -> (minimum number of fields, does it take a reply?)
COMMANDS = {
    "H": (1, False),  # hello: major, minor, value type, user, dict name
    "L": (1, True),  # lookup: key [, user]
    "I": (1, True),  # iterate: flags, max rows, path [, user]  (2.2: flags, path)
    "B": (1, False),  # begin: id [, user [, 2.4 extra]]
    "C": (1, True),  # commit: id
    "D": (1, True),  # async commit (old clients): id
    "R": (1, False),  # rollback: id
    "S": (3, False),  # set: id, key, value
    "U": (2, False),  # unset: id, key
    "A": (3, False),  # atomic increment: id, key, delta
    "T": (1, False),  # 2.4: set transaction timestamp
    "V": (1, False),  # 2.4: hide log values
}


def parse_command(line: str) -> Command:
    """Parse one line (without its LF) into a Command, or raise DictProtocolError."""
    if not line:
        raise DictProtocolError("empty line")
    kind = line[0]
    if kind not in COMMANDS:
        raise DictProtocolError(f"unknown command {kind!r}")
    fields = line[1:].split("\t")
    args = tuple(tabunescape(f) for f in fields) if "\x01" in line else tuple(fields)
    if len(args) < COMMANDS[kind][0]:
        raise DictProtocolError(f"command {kind} needs {COMMANDS[kind][0]} fields")
    return Command(kind, args)


def expects_reply(line: str) -> bool:
    """Whether the client waits for a reply to this (possibly malformed) line."""
    spec = COMMANDS.get(line[:1])
    return True if spec is None else spec[1]


def format_ok(*fields: str) -> str:
    return "O" + "\t".join(tabescape(f) for f in fields)


def format_not_found() -> str:
    return "N"


def format_fail(error: str = "") -> str:
    # An error text must stay on one line and inside one field.
    return "F" + tabescape(error)


def format_commit(ok: bool, tid: str, error: str = "") -> str:
    # Dovecot's own dict server answers `<O|F><id>`; a failure may carry the
    # error text as an extra field, which the 2.3 client logs.
    if ok:
        return "O" + tabescape(tid)
    return "F" + tabescape(tid) + ("\t" + tabescape(error) if error else "")


def format_iter_row(key: str, value: str) -> str:
    return "O" + tabescape(key) + "\t" + tabescape(value)


ITER_END = ""


def render_lookup(value: Optional[str]) -> str:
    """A lookup's answer: `O<value>`, or `N` for not found (None)."""
    return format_not_found() if value is None else "O" + tabescape(value)


def render_rows(rows, max_rows: int) -> str:
    """An iteration's answer: a row per line (at most max_rows, if set), then the end."""
    lines = []
    for key, value in rows:
        if max_rows and len(lines) >= max_rows:
            break
        lines.append(format_iter_row(key, value))
    lines.append(ITER_END)
    return "\n".join(lines)


def split_auth_key(rest: str) -> Tuple[str, ...]:
    """Split `<pw>"<user>` as written by Dovecot's %E: `"` separates, `\\` escapes."""
    if "\\" not in rest:  # nothing escaped (most keys): split in C
        return tuple(rest.split('"'))
    parts, cur, i = [], [], 0
    while i < len(rest):
        c = rest[i]
        if c == "\\":
            if i + 1 >= len(rest):
                raise DictProtocolError("dangling backslash in key")
            cur.append(rest[i + 1])
            i += 2
            continue
        if c == '"':
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return tuple(parts)
