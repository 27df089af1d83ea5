"""Two chatmail-metadata daemons (two "hosts") on one real redis-server.

Each host is its own process with its own config and dict socket, both with
the same `storage` URL; the tests speak Dovecot's dict protocol over the
sockets (as `mail_attribute_dict` and the push Lua script do) and a local
HTTPS sink (scripts/notify_sink.py) stands in for the notification service.
"""

import signal
import time
import uuid

import pytest

from local_relay import free_port
from notify_sink import NotifySink

from .test_metadata import deliver, get_metadata, wait_until
from .test_metadata import set_token as imap_set_token
from .test_metadata import sink_ca_dir  # noqa: F401 (a fixture)
from .test_redis_shared import PREFIX, Host, dict_exchange, stored_hash

GUID = uuid.uuid4().hex


def metadata_section(host_dir, sink_url, ca_file):
    return {"listen": f"unix:{host_dir}/metadata.socket", "notify_url": sink_url,
            "notify_ca_file": str(ca_file), "notify_retry_min": 0.2, "notify_retry_max": 1,
            "notify_timeout": 2}


@pytest.fixture
def sink(sink_ca_dir):  # noqa: F811
    s = NotifySink(free_port(), sink_ca_dir)  # started by the test
    yield s
    s.stop()


@pytest.fixture
def make_host(tmp_path, fresh_redis, sink):
    started = []

    def make(*daemons):
        name = f"host{len(started)}"
        section = metadata_section(tmp_path / name, sink.url, sink.ca_file)
        host = Host(tmp_path, name, fresh_redis.url, metadata=section).start(*daemons)
        started.append(host)
        return host

    yield make
    for host in started:
        host.stop()


def transaction(host, addr, *changes):
    lines = [f"B1\t{addr}\n", *(f"{c}\n" for c in changes), "C1\n"]
    return dict_exchange(host.dir / "metadata.socket", "metadata", lines)


def set_token(host, addr, token):
    return transaction(host, addr, f"S1\tpriv/{GUID}/devicetoken\t{token}")


def message_new(host, addr):
    return transaction(host, addr, f"S1\tpriv/{GUID}/messagenew\t1")


def tokens(host, addr):
    return dict_exchange(host.dir / "metadata.socket", "metadata",
                         [f"Lpriv/{GUID}/devicetoken\t{addr}\n"])


def queued(redis_server):
    return redis_server.client().hlen(PREFIX + "notify:items")


def test_a_token_set_on_one_host_is_seen_and_removed_on_the_other(make_host, new_addr):
    a = make_host("doveauth", "metadata")
    b = make_host("metadata")
    addr = new_addr()
    stored_hash(a.passdb(addr, "a-long-secret"))
    assert set_token(a, addr, "phone-token").startswith("O")
    assert set_token(b, addr, "tablet-token").startswith("O")
    assert tokens(b, addr) == "Otablet-token phone-token\n"
    assert tokens(a, addr) == "Otablet-token phone-token\n"
    assert transaction(a, addr, f"U1\tpriv/{GUID}/devicetoken").startswith("O")
    assert tokens(b, addr) == "N\n"
    stranger = new_addr()
    assert set_token(b, stranger, "phone-token").startswith("F")  # no account: refused


def test_a_notification_queued_on_a_killed_host_is_sent_by_the_other(
        make_host, fresh_redis, sink, new_addr):
    a = make_host("doveauth", "metadata")
    addr = new_addr()
    stored_hash(a.passdb(addr, "a-long-secret"))
    assert set_token(a, addr, "durable-token").startswith("O")
    # The sink is down: host a's notifier fails, retries, and the item stays queued.
    assert message_new(a, addr).startswith("O")
    assert queued(fresh_redis) == 1
    wait_until(lambda: "will retry" in a.log("metadata"), "host a tried and failed")
    a.procs["metadata"].send_signal(signal.SIGKILL)
    a.procs["metadata"].wait()
    assert queued(fresh_redis) == 1
    sink.start()
    b = make_host("metadata")
    posts = sink.wait_for(lambda p: len(p) >= 1, timeout=60)
    assert [(p.token, p.status) for p in posts] == [("durable-token", 200)]
    wait_until(lambda: not queued(fresh_redis), "item completed")
    assert fresh_redis.client().keys(PREFIX + "notify:*") == []
    assert "durable-token" not in b.log("metadata") + a.log("metadata")  # never logged


def test_a_notification_claimed_by_two_live_hosts_is_sent_once(
        make_host, fresh_redis, sink, new_addr):
    sink.start()
    a = make_host("doveauth", "metadata")
    b = make_host("metadata")
    addrs = [new_addr() for _ in range(6)]
    for i, addr in enumerate(addrs):
        stored_hash(a.passdb(addr, "a-long-secret"))
        set_token(a, addr, f"token-{i}")
    for i, addr in enumerate(addrs):
        assert message_new((a, b)[i % 2], addr).startswith("O")
    sink.wait_for(lambda p: len(p) >= len(addrs))
    time.sleep(0.5)  # room for a duplicate to show up
    assert sorted(p.token for p in sink.posts) == sorted(f"token-{i}" for i in range(6))


def test_dovecot_delivery_pushes_through_the_redis_store(make_relay, fresh_redis, sink,
                                                         new_addr):
    sink.start()
    relay = make_relay(storage=fresh_redis.url, metadata={
        "notify_url": sink.url, "notify_ca_file": str(sink.ca_file)})
    addr = new_addr()
    imap_set_token(relay, addr, "imap-token")
    rows = get_metadata(relay, addr, "INBOX", "/private/devicetoken")
    assert b"imap-token" in repr(rows).encode()
    assert list(fresh_redis.client().hkeys(PREFIX + "tokens:" + addr)) == ["imap-token"]
    deliver(relay, addr, new_addr())
    assert [p.token for p in sink.wait_for(lambda p: len(p) >= 1)] == ["imap-token"]
    wait_until(lambda: not queued(fresh_redis), "item completed")
    assert not (relay.mailboxes / "pending_notifications").exists()
    assert not (relay.mailboxes / addr / "metadata.json").exists()
