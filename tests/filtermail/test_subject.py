"""subject.py: the Subject of outgoing mail becomes [...] before signing, except passthrough."""

import pytest

from chatmail_services.filtermail.subject import hide_subject, minimise_subject
from chatmail_services.filtermail.verdicts import (
    ACCEPT_ENCRYPTED,
    ACCEPT_PASSTHROUGH_RECIPIENTS,
    ACCEPT_PASSTHROUGH_SENDER,
    ACCEPT_SECUREJOIN,
)

BODY = b"\r\nSubject: in the body stays\r\n"


@pytest.mark.parametrize("head, expected", [
    (b"From: a\r\nSubject: secret\r\nTo: b\r\n",
     b"From: a\r\nSubject: [...]\r\nTo: b\r\n"),
    # folded over several lines; the name in any case, blanks before the colon
    (b"subject : very\r\n long\r\n\tsecret\r\nTo: b\r\n", b"Subject: [...]\r\nTo: b\r\n"),
    # the last field of the header block, two of them, bare LF line endings
    (b"To: b\r\nSubject: s\r\n", b"To: b\r\nSubject: [...]\r\n"),
    (b"Subject: one\r\nX: y\r\nSubject: two\r\n", b"Subject: [...]\r\nX: y\r\nSubject: [...]\r\n"),
    (b"To: b\nSubject: s\n", b"To: b\nSubject: [...]\n"),
    # no Subject: nothing is added; names that merely start alike stay
    (b"To: b\r\nSubjectX: s\r\nX-Subject: s\r\n", b"To: b\r\nSubjectX: s\r\nX-Subject: s\r\n"),
])
def test_each_top_level_subject_value_is_replaced_and_nothing_else(head, expected):
    eol = b"\n" if b"\r" not in head else b"\r\n"
    body = BODY.replace(b"\r\n", eol)
    assert hide_subject(bytearray(head + body)) == expected + body


def test_a_message_without_header_block_or_body_is_handled():
    assert hide_subject(bytearray(b"\r\nSubject: body\r\n")) == b"\r\nSubject: body\r\n"
    assert hide_subject(bytearray(b"Subject: s\r\nTo: b\r\n")) == b"Subject: [...]\r\nTo: b\r\n"


@pytest.mark.parametrize("verdict, hidden", [
    (ACCEPT_ENCRYPTED, True), (ACCEPT_SECUREJOIN, True),
    (ACCEPT_PASSTHROUGH_SENDER, False), (ACCEPT_PASSTHROUGH_RECIPIENTS, False),
])
def test_passthrough_mail_keeps_its_subject(verdict, hidden):
    message = b"Subject: Your invitation\r\n\r\nbody\r\n"
    out = minimise_subject(verdict, bytearray(message))
    assert (out == b"Subject: [...]\r\n\r\nbody\r\n") is hidden
    assert out.endswith(b"\r\n\r\nbody\r\n")
