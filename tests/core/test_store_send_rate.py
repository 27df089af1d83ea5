"""The send rate limit (`Store.send_rate.check_send_rate`) over every backend, then what
only Redis has: one bucket shared by several store instances, its key and TTL.

Times are a fixed clock (stores take `now`); GCRA's arithmetic itself is
tested in tests/filtermail/test_ratelimit.py.
"""

import threading

import pytest

from .conftest import RedisBackend

DOMAIN = "chat.example.org"
ALICE = "alice1234@" + DOMAIN
BOB = "bob123456@" + DOMAIN
NOW = 1_700_000_000.0
KEY = f"chatmail:{DOMAIN}:rate:{ALICE}"


def burst_of(store, n, now=NOW, sender=ALICE, per_minute=60, burst=3):
    return [store.send_rate.check_send_rate(sender, now, per_minute, burst)[0] for _ in range(n)]


def test_a_burst_passes_then_the_next_message_is_refused(store):
    assert burst_of(store, 4) == [True, True, True, False]


def test_retry_after_is_the_time_until_one_more_would_pass(store):
    burst_of(store, 2, per_minute=6, burst=2)
    assert store.send_rate.check_send_rate(ALICE, NOW + 4, 6, 2) == (False, pytest.approx(6.0))
    assert store.send_rate.check_send_rate(ALICE, NOW + 9.5, 6, 2) == (False, pytest.approx(0.5))
    assert store.send_rate.check_send_rate(ALICE, NOW + 10, 6, 2) == (True, 0.0)


def test_the_allowance_refills_at_the_configured_rate(store):
    burst_of(store, 3)
    assert burst_of(store, 2, now=NOW + 1) == [True, False]
    assert burst_of(store, 4, now=NOW + 60) == [True, True, True, False]


def test_a_refused_message_does_not_use_up_the_allowance(store):
    burst_of(store, 3)
    for _ in range(50):
        assert store.send_rate.check_send_rate(ALICE, NOW + 0.5, 60, 3)[0] is False
    assert store.send_rate.check_send_rate(ALICE, NOW + 1, 60, 3) == (True, 0.0)


def test_senders_have_their_own_buckets_compared_without_case(store):
    burst_of(store, 3)
    assert burst_of(store, 1, sender=ALICE.upper()) == [False]
    assert burst_of(store, 3, sender=BOB) == [True] * 3


def test_undecodable_bytes_in_a_sender_are_just_part_of_its_name(store):
    odd = "caf\udce9@example.net"  # MAIL FROM's bytes, decoded with surrogateescape
    assert burst_of(store, 4, sender=odd) == [True, True, True, False]


def test_concurrent_messages_of_one_sender_are_counted_exactly(backend):
    if backend.name == "files":  # one process, one memory: the files store's scope
        stores = [backend.new()] * 4
    else:
        stores = [backend.new() for _ in range(4)]
    results, barrier = [], threading.Barrier(8)

    def send(i):
        barrier.wait()
        for _ in range(10):
            results.append(stores[i % 4].send_rate.check_send_rate(ALICE, NOW, 60, 25)[0])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 25
    for s in set(stores):
        s.close()


# -- Redis only ----------------------------------------------------------------
@pytest.fixture
def redis_backend(make_config, fresh_redis):
    return RedisBackend(make_config(storage=fresh_redis.url), fresh_redis)


def test_two_stores_on_one_redis_share_one_bucket(redis_backend):
    a, b = redis_backend.new(), redis_backend.new()
    assert burst_of(a, 2) + burst_of(b, 1) == [True] * 3
    assert a.send_rate.check_send_rate(ALICE, NOW, 60, 3)[0] is False
    assert b.send_rate.check_send_rate(ALICE, NOW + 0.25, 60, 3) == (False, pytest.approx(0.75))
    a.close()
    b.close()


def test_the_bucket_key_lives_until_the_bucket_is_full_again(redis_backend):
    r, store = redis_backend.server.client(), redis_backend.new()
    burst_of(store, 2, per_minute=6, burst=3)  # TAT = NOW + 20 s
    assert float(r.get(KEY)) == pytest.approx(NOW + 20)
    assert 19_000 < r.pttl(KEY) <= 20_000
    store.send_rate.check_send_rate(ALICE, NOW + 15, 6, 3)  # TAT = NOW + 30 s, 15 s from "now"
    assert 14_000 < r.pttl(KEY) <= 15_000
    assert r.keys("*") == [KEY]
    store.close()
