"""Reinjection into a real SMTPServer acting as Postfix's reinject service (in memory)."""

import pytest
from twisted.internet.task import Clock

from chatmail_services.filtermail.reinject import IDLE_SECONDS, ReinjectError, ReinjectPool
from chatmail_services.filtermail.mail import Envelope, Mail
from chatmail_services.filtermail.smtp import Reply, dot_stuff, stuffed_parts, unstuff

from .smtp_helpers import QUEUED, LoopbackEndpoint, Loopback, SinkHandler

MESSAGE = (b"From: <a@chat.example.org>\r\n\r\n.starts with a dot\r\n\xff 8-bit\r\n"
           b".\r\n..\r\nend\r\n")


@pytest.fixture
def loop():
    return Loopback()


@pytest.fixture
def sink():
    return SinkHandler()


@pytest.fixture
def endpoint(loop, sink):
    return LoopbackEndpoint(loop, sink)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def pool(clock, endpoint):
    return ReinjectPool(clock, endpoint, "filter.test", timeout=60)


def envelope(**kw):
    kw.setdefault("mail_from", "a@chat.example.org")
    kw.setdefault("rcpts", [("b@example.net", ())])
    return Envelope(**kw)


def deliver(loop, pool, env, message, prepend=b""):
    d = pool.deliver(Mail(env, message), prepend)
    loop.flush()
    results = []
    d.addBoth(results.append)
    return results[0]


def test_envelope_params_xforward_and_bytes_arrive_unchanged(loop, pool, sink):
    env = envelope(mail_from="", mail_params=("SIZE=77", "BODY=8BITMIME", "X-UNKNOWN=1"),
                   rcpts=[("b@example.net", ("NOTIFY=NEVER",)), ("c@example.net", ())],
                   xforward=("NAME=mx.example.net", "ADDR=192.0.2.1", "BOGUS=1"))
    assert deliver(loop, pool, env, MESSAGE) == QUEUED
    (got, message), = sink.received
    assert message == MESSAGE
    assert got.mail_from == "" and got.mail_params == ("SIZE=77", "BODY=8BITMIME")
    assert got.rcpts == env.rcpts
    assert got.xforward == ("NAME=mx.example.net", "ADDR=192.0.2.1")


def test_prepended_header_and_empty_message(loop, pool, sink):
    assert deliver(loop, pool, envelope(), MESSAGE, b"DKIM-Signature: x\r\n") == QUEUED
    assert deliver(loop, pool, envelope(), b"") == QUEUED
    assert [m for _, m in sink.received] == [b"DKIM-Signature: x\r\n" + MESSAGE, b""]


def test_large_message_is_streamed_in_chunks(loop, pool, sink):
    big = (b"." + b"y" * 998 + b"\r\n") * 3000
    assert deliver(loop, pool, envelope(), big) == QUEUED
    assert sink.received[0][1] == big


def test_connections_are_reused_and_expire_when_idle(loop, pool, endpoint, clock):
    for _ in range(3):
        assert deliver(loop, pool, envelope(), MESSAGE) == QUEUED
    assert len(endpoint.connections) == 1
    clock.advance(IDLE_SECONDS + 1)
    loop.flush()
    assert pool.idle == []
    server, _ = endpoint.connections[0]
    assert server.transport.disconnecting


def test_dead_idle_connection_is_replaced_transparently(loop, pool, endpoint, sink):
    assert deliver(loop, pool, envelope(), MESSAGE) == QUEUED
    server, _ = endpoint.connections[0]
    server.transport.loseConnection()  # Postfix's smtpd went away meanwhile
    loop.flush()
    assert deliver(loop, pool, envelope(), MESSAGE) == QUEUED
    assert len(endpoint.connections) == 2 and len(sink.received) == 2


def test_a_parked_connection_the_service_closed_leaves_the_pool_at_once(loop, pool,
                                                                        endpoint, clock):
    assert deliver(loop, pool, envelope(), MESSAGE) == QUEUED
    server, _ = endpoint.connections[0]
    server.transport.loseConnection()  # Postfix's smtpd went away meanwhile
    loop.flush()
    assert pool.idle == [] and clock.getDelayedCalls() == []


@pytest.mark.parametrize("where", ["mail", "data"])
def test_refusal_fails_and_the_connection_is_not_reused(loop, pool, endpoint, sink, where):
    if where == "mail":
        sink.mail_reply = Reply(451, "4.3.0 try later")
    else:
        sink.reply = Reply(554, "5.7.1 no")
    failure = deliver(loop, pool, envelope(), MESSAGE)
    assert failure.check(ReinjectError)
    assert failure.value.sent == (where == "data")
    assert pool.idle == []


def test_unreachable_reinject_service_fails(loop, pool, endpoint):
    endpoint.refuse = True
    failure = deliver(loop, pool, envelope(), MESSAGE)
    assert failure.check(ReinjectError) and "cannot connect" in str(failure.value)


def test_slow_reinject_service_times_out(loop, pool, sink, clock):
    sink.hold = True
    d = pool.deliver(Mail(envelope(), MESSAGE))
    loop.flush()
    assert not d.called
    clock.advance(61)
    results = []
    d.addBoth(results.append)
    assert results[0].check(ReinjectError) and "60" in str(results[0].value)
    assert pool.idle == []


@pytest.mark.parametrize("content", [b"", b".\r\n", b"a\r\n.\r\n", b"..x\r\n.y\r\n", b"a.b\r\n"])
def test_dot_stuffing_round_trips(content):
    assert unstuff(bytearray(dot_stuff(content))) == content
    assert unstuff(bytearray(b"".join(stuffed_parts([b"H: 1\r\n", content])))) == (
        b"H: 1\r\n" + content)


class WatchedMessage(bytearray):
    """A message body that a weak reference can watch (plain bytearrays cannot)."""


@pytest.mark.parametrize("situation", ["parked connection died", "refused", "unreachable"])
def test_nothing_keeps_a_message_alive_after_its_delivery(loop, pool, endpoint, sink,
                                                          situation):
    # A 25 MB message once stayed referenced from the traceback of the failed
    # attempt on a dead parked connection: RSS grew by one message per message.
    import gc
    import weakref

    assert deliver(loop, pool, envelope(), MESSAGE) == QUEUED  # parks a connection
    if situation == "parked connection died":
        endpoint.connections[0][0].transport.loseConnection()
        loop.flush()
    elif situation == "refused":
        sink.reply = Reply(554, "5.7.1 no")
    else:
        pool.idle.clear()
        endpoint.refuse = True
    message = WatchedMessage(MESSAGE)
    watch = weakref.ref(message)
    result = deliver(loop, pool, envelope(), message)
    delivered = result == QUEUED
    del message, result
    gc.collect()
    assert watch() is None
    assert delivered == (situation == "parked connection died")
