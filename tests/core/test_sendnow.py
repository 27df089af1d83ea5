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


class SocketTransport(StringTransport):
    """A transport whose handle is a real socket, TLS or not (`TLS`, as Twisted's
    tcp.Connection has it; `startTLS` sets it), or another object with `send`:
    what pyOpenSSL's Connection is, the handle of a TLS transport."""

    def __init__(self, handle, tls=False):
        super().__init__()
        self.handle, self.TLS = handle, tls

    def getHandle(self):
        return self.handle


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_a_plain_socket_gets_the_bytes_at_once(pair):
    transport = SocketTransport(pair[0])
    SendNow(transport).send(b"one\n")
    assert pair[1].recv(100) == b"one\n" and transport.value() == b""


class HandleWithSend:
    def send(self, data):
        raise AssertionError("plaintext sent past TLS")


@pytest.mark.parametrize("make", [
    lambda pair: StringTransport(),  # no socket at all
    lambda pair: SocketTransport(pair[0], tls=True),  # TLS from the start (ssl: endpoint)
    lambda pair: SocketTransport(HandleWithSend()),  # a TLS connection's handle
])
def test_without_a_plain_socket_every_byte_goes_through_write(pair, make):
    transport = make(pair)
    sender = SendNow(transport)
    sender.send(b"one\n")
    sender.send(b"two\n")
    assert transport.value() == b"one\ntwo\n"
    with pytest.raises(BlockingIOError):
        pair[1].recv(100)


def test_once_tls_starts_the_socket_is_left_to_the_transport(pair):
    transport = SocketTransport(pair[0])
    sender = SendNow(transport)
    sender.send(b"STARTTLS ok\n")
    transport.TLS = True  # what tcp.Connection.startTLS does
    sender.send(b"secret\n")
    assert pair[1].recv(100) == b"STARTTLS ok\n"
    assert transport.value() == b"secret\n"
