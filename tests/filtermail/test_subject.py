"""subject.py: the Subject of outgoing mail becomes [...] before signing, except passthrough."""

import pytest

from chatmail_services.filtermail.mail import Envelope, Mail
from chatmail_services.filtermail.policy import Accepted
from chatmail_services.filtermail.subject import hidden_subject_header, minimise_subject


@pytest.mark.parametrize("head, expected", [
    (b"From: a\r\nSubject: secret\r\nTo: b\r\n",
     b"From: a\r\nSubject: [...]\r\nTo: b\r\n"),
    # folded over several lines; the name in any case, blanks before the colon
    (b"subject : very\r\n long\r\n\tsecret\r\nTo: b\r\n", b"Subject: [...]\r\nTo: b\r\n"),
    # the last field, two of them, bare LF line endings
    (b"To: b\r\nSubject: s\r\n", b"To: b\r\nSubject: [...]\r\n"),
    (b"Subject: one\r\nX: y\r\nSubject: two\r\n", b"Subject: [...]\r\nX: y\r\nSubject: [...]\r\n"),
    (b"To: b\nSubject: s\n", b"To: b\nSubject: [...]\n"),
    # no Subject: nothing is added; names that merely start alike stay
    (b"To: b\r\nSubjectX: s\r\nX-Subject: s\r\n", b"To: b\r\nSubjectX: s\r\nX-Subject: s\r\n"),
    (b"", b""),
])
def test_each_subject_field_of_a_header_block_is_replaced_and_nothing_else(head, expected):
    assert hidden_subject_header(head) == expected


def mail(message: bytes) -> Mail:
    return Mail(Envelope("alice@chat.example.org", rcpts=[("bob@example.net", ())]),
                bytearray(message))


@pytest.mark.parametrize("reason, hidden", [
    ("encrypted", True), ("securejoin", True),
    ("passthrough-sender", False), ("passthrough-recipients", False),
])
def test_passthrough_mail_keeps_its_subject(reason, hidden):
    message = (b"From: <alice@chat.example.org>\r\nSubject: Your invitation\r\n"
               b"\r\nSubject: body\r\n")
    out = minimise_subject(Accepted(reason), mail(message))
    assert (out.header_block == b"From: <alice@chat.example.org>\r\nSubject: [...]\r\n") is hidden
    assert out.body == b"Subject: body\r\n"  # the body is never touched
    assert out.from_address == "alice@chat.example.org"


def test_a_subject_already_hidden_passes_the_same_mail_on():
    already = mail(b"Subject: [...]\r\n\r\nbody\r\n")
    assert minimise_subject(Accepted("encrypted"), already) is already
