"""Where store reads run: inline for the files store, in a pool for Redis."""

from twisted.internet import defer

from chatmail_services.core.inline import INLINE, reads_runner, then
from chatmail_services.core.store import open_store
from chatmail_services.core.store.files import open_files


def test_files_reads_run_inline_and_blocking_ones_in_the_pool(tmp_path, inline_pool):
    files = open_files(tmp_path, "chat.example.org")
    assert reads_runner(files, inline_pool) is INLINE



def test_redis_reads_run_in_the_pool(make_config, fresh_redis, inline_pool):
    store = open_store(make_config(storage=fresh_redis.url))
    try:
        assert reads_runner(store, inline_pool) is inline_pool
    finally:
        store.close()


def test_then_chains_plain_values_now_and_deferreds_later():
    assert then(2, lambda v, k: v * k, 3) == 6
    d = defer.Deferred()
    chained = then(d, lambda v, k: v * k, 3)
    d.callback(2)
    assert chained.result == 6


def test_inline_run_raises_what_the_call_raises():
    def broken():
        raise OSError("disk gone")

    try:
        INLINE.run(broken)
    except OSError as e:
        assert str(e) == "disk gone"
    else:
        raise AssertionError("no exception")
