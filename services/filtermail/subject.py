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
accepted outgoing message except passthrough mail (docs/privacy.md). Only
the value of each top-level Subject field changes; every other byte stays.
Chat clients already send ``[...]``: then the `Mail` is passed on as it is,
otherwise a new one is made (and parsed) from the changed bytes.
"""

import re

from .mail import Mail

HIDDEN = b"Subject: [...]"
# verdict reasons (policy.py) of cleartext the operator chose to let out as it is
KEEPS_SUBJECT = frozenset({"passthrough-sender", "passthrough-recipients"})

# a field: a line that is not a continuation, with its continuation lines
_FIELD = re.compile(rb"(?m)^([^ \t\r\n:]+)[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*")


def hidden_subject_header(head: bytes) -> bytes:
    """The header block `head` with each Subject field replaced by ``Subject: [...]``."""
    def hide(field: re.Match) -> bytes:
        if field.group(1).lower() != b"subject":
            return field.group(0)
        return HIDDEN + (b"\r" if field.group(0).endswith(b"\r") else b"")
    return _FIELD.sub(hide, head)


def hide_subject(mail: Mail) -> Mail:
    head = mail.header_block
    hidden = hidden_subject_header(head)
    if hidden == head:
        return mail
    return Mail(mail.envelope, bytearray(hidden) + mail.data[mail.header_end:])


def minimise_subject(verdict, mail: Mail) -> Mail:
    """The outgoing rewrite: hide the Subject unless the verdict is passthrough."""
    if verdict.reason in KEEPS_SUBJECT:
        return mail
    return hide_subject(mail)
