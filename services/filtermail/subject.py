"""Hide the Subject of outgoing mail before it is signed: it becomes ``[...]``.

Chat clients put the real Subject inside the encrypted part; the one outside
is read by every server on the way. Postfix drops the other identifying
header fields itself (conf/postfix/submission_header_cleanup), but it cannot
do this one: its header_checks see one field at a time and cannot tell
encrypted mail from the operator's cleartext passthrough mail, which keeps
its Subject; and in the before-queue wiring no Postfix cleanup runs between
the client and this filter, so a Subject changed by Postfix after filtermail
signed (the Subject is a signed field) would break the DKIM signature.

So filtermail replaces it, after the verdict and before signing, on every
accepted outgoing message except passthrough mail. Only the value of each
top-level Subject field changes; every other byte stays as it was.
"""

import re

HIDDEN = b"[...]"
# verdict reasons (verdicts.py) of cleartext the operator chose to let out as it is
KEEPS_SUBJECT = frozenset({"passthrough-sender", "passthrough-recipients"})

_HEADER_END = re.compile(rb"\r?\n\r?\n")
# a field: a line that is not a continuation, with its continuation lines
_FIELD = re.compile(rb"(?m)^([^ \t\r\n:]+)[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*")


def hide_subject(message: bytearray) -> bytearray:
    """`message` with the value of each top-level Subject field replaced by [...]."""
    if message[:1] in (b"\r", b"\n"):  # no header block at all
        return message
    end = _HEADER_END.search(message)
    head_end = end.start() + 1 if end else len(message)
    spans = [m.span() for m in _FIELD.finditer(message, 0, head_end)
             if m.group(1).lower() == b"subject"]
    for start, stop in reversed(spans):
        eol = b"\r" if message[stop - 1:stop] == b"\r" else b""
        message[start:stop] = b"Subject: " + HIDDEN + eol
    return message


def minimise_subject(verdict, message: bytearray) -> bytearray:
    """The outgoing rewrite: hide the Subject unless the verdict is passthrough."""
    if verdict.reason in KEEPS_SUBJECT:
        return message
    return hide_subject(message)
