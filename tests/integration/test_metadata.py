"""chatmail-metadata behind Debian's real Dovecot (IMAP METADATA, LMTP delivery)
and a local HTTPS notification sink with its own test CA."""

import imaplib
import os
import shutil
import signal
import smtplib
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from local_relay import free_port
from notify_sink import NotifySink, make_test_ca

from .conftest import imap_login

PASSWORD = "a-long-secret"
imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))


@pytest.fixture(scope="session")
def sink_ca_dir():
    path = Path(tempfile.mkdtemp(prefix="chatmail-sink-", dir="/tmp"))
    path.chmod(0o755)  # the daemon (user vmail) reads ca.pem
    for f in make_test_ca(path):
        f.chmod(0o644)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sink(sink_ca_dir):
    s = NotifySink(free_port(), sink_ca_dir).start()
    yield s
    s.stop()


@pytest.fixture
def push_relay(make_relay, sink, relay_dir):
    turn = relay_dir / "turn.socket"
    return make_relay(metadata={
        "notify_url": sink.url, "notify_ca_file": str(sink.ca_file),
        "notify_retry_min": 0.2, "notify_retry_max": 1, "notify_timeout": 2,
        "server_keys": {"irohrelay": {"value": "https://iroh.{mail_domain}"},
                        "turn": {"value": "turn.{mail_domain}:3478", "turn_socket": str(turn)}},
    })


def set_token(relay, addr, token):
    conn = imap_login(relay, addr, PASSWORD)
    value = "NIL" if token is None else f'"{token}"'
    typ, data = conn._simple_command("SETMETADATA", "INBOX", f"(/private/devicetoken {value})")
    conn.logout()
    assert typ == "OK", data


def get_metadata(relay, addr, mailbox, key):
    conn = imap_login(relay, addr, PASSWORD)
    typ, data = conn._simple_command("GETMETADATA", mailbox, key)
    assert typ == "OK", data
    _, rows = conn._untagged_response(typ, data, "METADATA")
    conn.logout()
    return rows


def deliver(relay, to, from_addr):
    msg = f"From: <{from_addr}>\r\nTo: <{to}>\r\nSubject: hi\r\n\r\nhello\r\n"
    with smtplib.LMTP("127.0.0.1", relay.lmtp_port) as lmtp:
        refused = lmtp.sendmail(from_addr, [to], msg)
    assert refused == {}
    return time.time()


def account(relay, new_addr, *tokens):
    addr = new_addr()
    for token in tokens:
        set_token(relay, addr, token)
    return addr


def queue_files(relay):
    qdir = relay.mailboxes / "pending_notifications"
    return [p for p in qdir.iterdir() if not p.name.startswith(".")] if qdir.exists() else []


def wait_until(check, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout}s"
        time.sleep(0.05)


def test_tokens_from_two_devices_are_stored_and_returned(push_relay, new_addr):
    addr = account(push_relay, new_addr, "phone-token", "tablet-token")
    rows = get_metadata(push_relay, addr, "INBOX", "/private/devicetoken")
    assert b"phone-token" in repr(rows).encode() and b"tablet-token" in repr(rows).encode()


def test_a_delivery_posts_once_per_token_and_a_self_sent_one_none(push_relay, sink, new_addr):
    addr = account(push_relay, new_addr, "phone-token", "tablet-token")
    deliver(push_relay, addr, new_addr())
    sink.wait_for(lambda p: len(p) >= 2)
    deliver(push_relay, addr, addr)  # self-sent: no notification
    deliver(push_relay, addr, new_addr())  # a marker: once it arrived, the other had its chance
    sink.wait_for(lambda p: len(p) >= 4)
    wait_until(lambda: not queue_files(push_relay), "push queue drained")
    assert sorted(p.token for p in sink.posts) == ["phone-token"] * 2 + ["tablet-token"] * 2
    assert queue_files(push_relay) == []


def test_nil_removes_the_tokens(push_relay, sink, new_addr):
    addr = account(push_relay, new_addr, "phone-token")
    set_token(push_relay, addr, None)
    rows = get_metadata(push_relay, addr, "INBOX", "/private/devicetoken")
    assert b"phone-token" not in repr(rows).encode()
    set_token(push_relay, addr, "new-token")  # a device registers again
    deliver(push_relay, addr, new_addr())
    assert [p.token for p in sink.wait_for(lambda p: len(p) >= 1)] == ["new-token"]


def test_410_removes_the_dead_token(push_relay, sink, new_addr):
    addr = account(push_relay, new_addr, "dead-token", "live-token")
    sink.status_for["dead-token"] = 410
    deliver(push_relay, addr, new_addr())
    sink.wait_for(lambda p: len(p) >= 2)
    wait_until(lambda: b"dead-token" not in repr(get_metadata(
        push_relay, addr, "INBOX", "/private/devicetoken")).encode(), "dead token removed")
    assert b"live-token" in repr(get_metadata(push_relay, addr, "INBOX",
                                              "/private/devicetoken")).encode()


def test_a_notification_waits_while_the_sink_is_down(push_relay, sink, new_addr):
    addr = account(push_relay, new_addr, "patient-token")
    sink.stop()
    deliver(push_relay, addr, new_addr())
    time.sleep(2)  # several failed attempts
    assert queue_files(push_relay)
    sink.start()
    assert [p.token for p in sink.wait_for(lambda p: len(p) >= 1)] == ["patient-token"]


def test_a_pending_notification_survives_sigkill(push_relay, sink, new_addr):
    addr = account(push_relay, new_addr, "durable-token")
    sink.default_status = 503
    deliver(push_relay, addr, new_addr())
    sink.wait_for(lambda p: len(p) >= 1)
    push_relay.procs["metadata"].send_signal(signal.SIGKILL)
    push_relay.procs["metadata"].wait()
    assert queue_files(push_relay)
    sink.default_status = 200
    push_relay.start_daemon("metadata")
    sink.wait_for(lambda p: any(x.status == 200 for x in p), timeout=60)
    assert {p.token for p in sink.posts} == {"durable-token"}


def serve_turn_once(path, line):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    os.chmod(path, 0o666)
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        conn.sendall(line)
        conn.close()
        server.close()

    threading.Thread(target=answer, daemon=True).start()


def test_capability_keys_answer_over_imap(push_relay, new_addr, relay_dir):
    addr = account(push_relay, new_addr)
    rows = get_metadata(push_relay, addr, '""', "/shared/vendor/deltachat/irohrelay")
    assert b"https://iroh.chat.example.org" in repr(rows).encode()
    rows = get_metadata(push_relay, addr, '""', "/shared/vendor/deltachat/maxsmtprecipients")
    assert b"1000" in repr(rows).encode()
    rows = get_metadata(push_relay, addr, '""', "/shared/vendor/deltachat/turn")
    assert b"NIL" in repr(rows).encode()  # no TURN helper running
    serve_turn_once(relay_dir / "turn.socket", b"1700000000:c2VjcmV0\n")
    rows = get_metadata(push_relay, addr, '""', "/shared/vendor/deltachat/turn")
    assert b"turn.chat.example.org:3478:1700000000:c2VjcmV0" in repr(rows).encode()
