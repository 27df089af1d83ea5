"""The Redis backend's reactor-side reads (core/store/redis/wire.py, reads.py).

First against a real redis-server on loopback, each test on a fresh epoll
reactor of its own: the same answers as the synchronous store, AUTH and
SELECT, a restart, an outage, a frozen server. Then the connection's
bookkeeping with a test double for the socket (a StringTransport, named
`FakeEndpoint`), where the bytes and the clock are ours to drive.
"""

import time

import pytest
from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger

from chatmail_services.core.days import day_of
from chatmail_services.core.inline import store_reads
from chatmail_services.core.store import AccountDamaged, StoreError, StoreUnavailable, open_store
from chatmail_services.core.store.redis.client import Health
from chatmail_services.core.store.redis.wire import RedisLink, encode

from ..ownreactor import on_reactor
from ..redisserver import RedisServer

DOMAIN = "chat.example.org"
HASH = "{SHA512-CRYPT}$6$salt$hash"
DAY = 86400


def read_all(store, calls):
    """Each `call(reads)` on one reactor, one after the other: their results,
    or the exception each failed with."""
    def run(reactor):
        reads = store_reads(store, None, reactor)
        results = []

        @defer.inlineCallbacks
        def each():
            for call in calls:
                try:
                    results.append((yield call(reads)))
                except Exception as e:
                    results.append(e)
            return results
        return each()
    return on_reactor(run)


@pytest.fixture
def make_store(make_config, fresh_redis):
    stores = []

    def make(url=None, **redis_section):
        stores.append(open_store(make_config(storage=url or fresh_redis.url,
                                             redis=redis_section)))
        return stores[-1]

    yield make
    for s in stores:
        s.close()


def test_reads_answer_as_the_synchronous_store(make_store, fresh_redis):
    store, r = make_store(), fresh_redis.client()
    now = time.time()
    known, new, unknown, damaged, wrong = (f"{n}1234@{DOMAIN}" for n in (
        "known", "newbie", "unknown", "damaged", "wrongtype"))
    store.accounts.create_account(known, HASH, now)
    yesterday = day_of(now) - DAY
    store.accounts.set_last_login(known, yesterday)
    store.accounts.create_account(new, HASH, now)
    r.delete(store.accounts.keys.last_login(new))  # an expired record reads as day 0
    r.hset(store.accounts.keys.account(damaged), "enforceE2EEincoming", "1")
    r.set(store.accounts.keys.account(wrong), "a string, not a hash")
    for token, ts in (("old", now - 50), ("newest", now - 1), ("stale", now - 500)):
        store.push.add_token(known, token, ts, 100, 10)
    calls = [lambda rd: rd.accounts.get_password(known),
             lambda rd: rd.accounts.get_password(unknown),
             lambda rd: rd.accounts.get_password(damaged),
             lambda rd: rd.accounts.get_password(wrong),
             lambda rd: rd.accounts.get_last_login(known),
             lambda rd: rd.accounts.get_last_login(new),
             lambda rd: rd.accounts.get_last_login(unknown),
             lambda rd: rd.push.get_tokens(known, now, 100),
             lambda rd: rd.push.get_tokens(unknown, now, 100)]
    got = read_all(store, calls)
    assert got[0] == HASH and got[1] is None
    assert isinstance(got[2], AccountDamaged) and isinstance(got[3], AccountDamaged)
    assert got[4:7] == [yesterday, 0, None]
    assert got[7] == ["newest", "old"] == store.push.get_tokens(known, now, 100)
    assert got[8] == []
    assert got[0] == store.accounts.get_password(known)
    assert got[4:7] == [store.accounts.get_last_login(a) for a in (known, new, unknown)]


def test_many_reads_in_one_turn_share_the_connection_and_keep_their_order(make_store):
    store = make_store()
    addrs = [f"user{i:05d}@{DOMAIN}" for i in range(200)]
    for addr in addrs[::2]:
        store.accounts.create_account(addr, HASH + addr, time.time())

    def run(reactor):
        reads = store_reads(store, None, reactor).accounts
        return defer.gatherResults([reads.get_password(a) for a in addrs])

    got = on_reactor(run)
    assert got == [HASH + a if i % 2 == 0 else None for i, a in enumerate(addrs)]


def test_password_and_database_from_the_config(make_config, tmp_path):
    server = RedisServer(password="s3cret pass").start()
    try:
        (tmp_path / "redis.pass").write_text("s3cret pass\n")
        store = open_store(make_config(storage=f"redis://127.0.0.1:{server.port}/3",
                                       redis={"password_file": str(tmp_path / "redis.pass")}))
        addr = "dbthree1@" + DOMAIN
        store.accounts.create_account(addr, HASH, time.time())
        assert read_all(store, [lambda rd: rd.accounts.get_password(addr)]) == [HASH]
        store.close()
        (tmp_path / "redis.pass").write_text("wrong\n")
        wrong = open_store(make_config(storage=f"redis://127.0.0.1:{server.port}/3",
                                       redis={"password_file": str(tmp_path / "redis.pass")}))
        [failure] = read_all(wrong, [lambda rd: rd.accounts.get_password(addr)])
        assert isinstance(failure, StoreUnavailable) and "AUTH" in str(failure)
        wrong.close()
    finally:
        server.stop()


@pytest.fixture
def own_server():
    server = RedisServer(durable=True).start()
    yield server
    server.stop()


def watched(store):
    events = []
    store.accounts.conn.health.log = Logger(observer=events.append)
    return events


def test_a_read_survives_a_redis_restart_between_reads(make_store, own_server):
    store, addr = make_store(own_server.url), "survivor1@" + DOMAIN
    store.accounts.create_account(addr, HASH, time.time())

    def run(reactor):
        reads = store_reads(store, None, reactor).accounts

        @defer.inlineCallbacks
        def steps():
            first = yield reads.get_password(addr)
            own_server.kill()
            own_server.start()  # the open connection is dead now
            second = yield reads.get_password(addr)
            return first, second
        return steps()

    assert on_reactor(run) == (HASH, HASH)


def test_redis_down_fails_reads_logged_once_then_they_recover(make_store, own_server):
    store, addr = make_store(own_server.url, socket_timeout=0.5), "survivor2@" + DOMAIN
    store.accounts.create_account(addr, HASH, time.time())
    events = watched(store)

    def run(reactor):
        reads = store_reads(store, None, reactor)

        @defer.inlineCallbacks
        def steps():
            yield reads.accounts.get_password(addr)
            own_server.kill()
            failures = []
            for call in (lambda: reads.accounts.get_password(addr),
                         lambda: reads.accounts.get_last_login(addr),
                         lambda: reads.push.get_tokens(addr, time.time(), 100)):
                try:
                    yield call()
                except StoreUnavailable as e:
                    failures.append(e)
            own_server.start()
            back = yield reads.accounts.get_password(addr)
            return failures, back
        return steps()

    failures, back = on_reactor(run)
    assert len(failures) == 3 and back == HASH
    formats = [e["log_format"] for e in events]
    assert len(formats) == 2 and "unreachable" in formats[0] and "reachable again" in formats[1]


def test_a_frozen_redis_fails_the_read_after_the_timeout_then_recovers(make_store, own_server):
    store, addr = make_store(own_server.url, socket_timeout=0.5), "frozen123@" + DOMAIN

    def run(reactor):
        reads = store_reads(store, None, reactor).accounts

        @defer.inlineCallbacks
        def steps():
            yield reads.get_password(addr)  # connected
            own_server.pause()
            try:
                yield reads.get_password(addr)
                frozen = None
            except StoreUnavailable as e:
                frozen = e
            finally:
                own_server.resume()
            back = yield reads.get_password(addr)
            return frozen, back
        return steps()

    frozen, back = on_reactor(run)
    assert "no answer within 0.5 s" in str(frozen) and back is None


# -- the connection's bookkeeping, over a test double -------------------------

class FakeEndpoint:
    """Test double for the TCP connection: each connect builds the protocol
    over a StringTransport; `refuse` makes the next connects fail."""

    def __init__(self):
        self.protos, self.refuse = [], False

    def connect(self, factory):
        if self.refuse:
            return defer.fail(ConnectionRefusedError())
        proto = factory.buildProtocol(None)
        proto.makeConnection(StringTransport())
        self.protos.append(proto)
        return defer.succeed(proto)

    def sent(self, index=-1) -> bytes:
        return self.protos[index].transport.value()


@pytest.fixture
def link():
    clock, endpoint = Clock(), FakeEndpoint()
    made = RedisLink(clock, endpoint, [["AUTH", "pw"], ["SELECT", 2]], 1.0, Health())
    made.clock, made.endpoint = clock, endpoint
    return made


def test_setup_goes_first_then_the_reads_in_one_buffer(link):
    one, two = link.call(("GET", "a")), link.call(("EXISTS", "b"), ("GET", "c"))
    assert link.endpoint.sent() == encode([["AUTH", "pw"], ["SELECT", 2], ["GET", "a"],
                                          ["EXISTS", "b"], ["GET", "c"]])
    link.endpoint.protos[0].dataReceived(b"+OK\r\n+OK\r\n$1\r\nx\r\n:1\r\n$-1\r\n")
    assert one.result == "x" and two.result == [1, None]


def test_replies_split_anywhere_are_put_together(link):
    d = link.call(("GET", "a"))
    proto = link.endpoint.protos[0]
    for chunk in (b"+O", b"K\r\n+OK\r", b"\n$6\r\nh\xc3", b"\xa9llo\r", b"\n"):
        proto.dataReceived(chunk)
    assert d.result == "héllo"


def test_error_replies_fail_only_their_read(link):
    damaged, other, fine = (link.call(("HGETALL", "k")), link.call(("GET", "k")),
                            link.call(("GET", "j")))
    link.endpoint.protos[0].dataReceived(
        b"+OK\r\n+OK\r\n-WRONGTYPE Operation against a key\r\n-ERR odd\r\n$1\r\ny\r\n")
    assert damaged.result.check(AccountDamaged) and other.result.check(StoreError)
    assert "ERR odd" in other.result.getErrorMessage() and fine.result == "y"
    damaged.addErrback(lambda _: None), other.addErrback(lambda _: None)
    assert link.proto is link.endpoint.protos[0]  # the connection stays


def test_no_answer_within_the_timeout_cuts_the_connection(link):
    d = link.call(("GET", "a"))
    link.clock.advance(0.6)
    later = link.call(("GET", "b"))
    link.clock.advance(0.5)
    assert d.result.check(StoreUnavailable) and later.result.check(StoreUnavailable)
    assert "no answer within 1 s" in d.result.getErrorMessage()
    assert link.endpoint.protos[0].transport.disconnecting and link.health.down
    d.addErrback(lambda _: None), later.addErrback(lambda _: None)
    again = link.call(("GET", "c"))  # a new connection
    assert len(link.endpoint.protos) == 2
    link.endpoint.protos[1].dataReceived(b"+OK\r\n+OK\r\n$1\r\nz\r\n")
    assert again.result == "z" and not link.health.down


def test_a_read_cut_by_a_dropped_connection_is_sent_once_more(link):
    d = link.call(("GET", "a"))
    link.endpoint.protos[0].connectionLost(defer.Failure(ConnectionRefusedError()))
    assert not d.called
    assert link.endpoint.sent(1).endswith(encode([["GET", "a"]]))
    link.endpoint.protos[1].connectionLost(defer.Failure(ConnectionRefusedError()))
    assert d.result.check(StoreUnavailable)
    d.addErrback(lambda _: None)


def test_a_refused_connection_fails_the_waiting_reads(link):
    link.endpoint.refuse = True
    d = link.call(("GET", "a"))
    assert d.result.check(StoreUnavailable) and "unreachable" in d.result.getErrorMessage()
    d.addErrback(lambda _: None)
    link.endpoint.refuse = False
    ok = link.call(("GET", "a"))
    link.endpoint.protos[0].dataReceived(b"+OK\r\n+OK\r\n$-1\r\n")
    assert ok.called and ok.result is None


def test_a_failed_setup_fails_the_reads_and_the_connection(link):
    d = link.call(("GET", "a"))
    link.endpoint.protos[0].dataReceived(b"-WRONGPASS invalid password\r\n")
    assert d.result.check(StoreUnavailable) and "AUTH" in d.result.getErrorMessage()
    assert link.endpoint.protos[0].transport.disconnecting
    d.addErrback(lambda _: None)


@pytest.mark.parametrize("garbage", [b"?what\r\n", b"+OK\r\n+OK\r\n$1\r\nx\r\n:2\r\n"])
def test_bytes_that_are_no_answer_cut_the_connection(link, garbage):
    d = link.call(("GET", "a"))
    link.endpoint.protos[0].dataReceived(garbage)
    assert link.endpoint.protos[0].transport.disconnecting and link.proto is None
    if garbage.startswith(b"?"):
        assert d.result.check(StoreUnavailable)
        d.addErrback(lambda _: None)
    else:
        assert d.result == "x"  # answered before the stray reply


def test_closed_link_fails_at_once(link):
    link.close()
    d = link.call(("GET", "a"))
    assert d.result.check(StoreUnavailable)
    d.addErrback(lambda _: None)
