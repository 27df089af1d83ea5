"""Replies sent straight to the socket (core/sendnow.py), on a real epoll
reactor and a real UNIX socket: what the socket does not take waits in the
transport, and nothing sent later overtakes it."""

import socket

import pytest
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, globalLogPublisher

from chatmail_services.core.dictproto import DictHandler, DictServerFactory
from chatmail_services.core.sendnow import SendNow

HELLO = b"H3\t2\t0\t\ttest\n"
ROWS = 20000  # about 1 MB of rows: more than a UNIX socket's buffer takes at once


class BigHandler(DictHandler):
    def lookup(self, key, user):
        return "small"

    def iterate(self, path, user, flags, max_rows):
        return [(f"shared/row/{i:06d}", "v" * 40) for i in range(ROWS)]


@pytest.fixture
def served(tmp_path):
    reactor = EPollReactor()
    path = str(tmp_path / "dict.socket")
    port = reactor.listenUNIX(path, DictServerFactory(BigHandler()))
    client = socket.socket(socket.AF_UNIX)
    client.connect(path)
    client.setblocking(False)
    reactor.iterate(0)  # accepts the connection
    yield reactor, client, port
    client.close()
    port.stopListening()
    for _ in range(3):
        reactor.iterate(0)
    reactor.waker.connectionLost(None)
    reactor._poller.close()


def read_all(reactor, client, expected_len):
    got = bytearray()
    for _ in range(10000):
        reactor.iterate(0)
        try:
            got += client.recv(1 << 20)
        except BlockingIOError:
            pass
        if len(got) >= expected_len:
            break
    return bytes(got)


def test_what_the_socket_does_not_take_is_sent_first_and_in_order(served):
    reactor, client, port = served
    rows = b"".join(b"Oshared/row/%06d\t%s\n" % (i, b"v" * 40) for i in range(ROWS)) + b"\n"
    client.sendall(HELLO + b"I0\t0\tshared/row/\n")
    reactor.iterate(0)  # reads the iterate: the socket takes part of the reply
    first = client.recv(1 << 22)
    assert 0 < len(first) < len(rows)  # the rest waits in the transport
    client.sendall(b"Lshared/x\n")  # answered while the rows still wait
    reactor.iterate(0)
    rest = read_all(reactor, client, len(rows) + len(b"Osmall\n") - len(first))
    assert first + rest == rows + b"Osmall\n"
    client.sendall(b"Lshared/y\n")  # the transport drained: still served, in order
    assert read_all(reactor, client, len(b"Osmall\n")) == b"Osmall\n"


def test_a_client_gone_before_its_reply_is_the_reactors_to_see(served):
    reactor, client, port = served
    client.sendall(HELLO + b"Lshared/x\n")
    client.shutdown(socket.SHUT_RDWR)  # the server's send fails: handed to the transport
    failures = []
    def observer(event):
        if event.get("log_level") in (LogLevel.error, LogLevel.critical):
            failures.append(event)
    globalLogPublisher.addObserver(observer)
    try:
        for _ in range(5):
            reactor.iterate(0)
    finally:
        globalLogPublisher.removeObserver(observer)
    assert failures == []  # no traceback: an ordinary lost connection
    # the connection is closed and forgotten; the server still listens
    assert set(reactor.getReaders()) == {reactor.waker, port}
    assert reactor.getWriters() == []


def test_a_transport_without_a_socket_gets_every_byte_through_write():
    transport = StringTransport()
    sender = SendNow(transport)
    sender.send(b"one\n")
    sender.send(b"two\n")
    assert transport.value() == b"one\ntwo\n"
