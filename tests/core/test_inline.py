"""Where a daemon's hot-path reads run: inline on the files store, on the
reactor-side client for Redis, in a pool for Redis over TLS."""

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from chatmail_services.core.inline import Pooled, store_reads, then
from chatmail_services.core.store import open_store
from chatmail_services.core.store.files import open_files
from chatmail_services.core.store.redis.reads import RedisAccountReads, RedisPushReads


def test_files_reads_are_the_roles_own_methods(tmp_path, inline_pool):
    files = open_files(tmp_path, "chat.example.org")
    reads = store_reads(files, inline_pool, MemoryReactorClock())
    assert reads.accounts is files.accounts and reads.push is files.push


def test_redis_reads_use_the_reactor_side_client(make_config, fresh_redis, inline_pool):
    store = open_store(make_config(storage=fresh_redis.url))
    try:
        reads = store_reads(store, inline_pool, MemoryReactorClock())
        assert isinstance(reads.accounts, RedisAccountReads)
        assert isinstance(reads.push, RedisPushReads)
    finally:
        store.close()


def test_redis_over_tls_reads_in_the_pool(make_config, tmp_path, inline_pool):
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    store = open_store(make_config(storage="rediss://127.0.0.1:1/0",
                                   redis={"tls_ca_file": str(ca)}))
    reads = store_reads(store, inline_pool, MemoryReactorClock())
    assert isinstance(reads.accounts, Pooled)
    d = reads.accounts.get_last_login("nobody@chat.example.org")
    assert isinstance(d, defer.Deferred)  # ran in the pool: unreachable, so a failure
    assert "unreachable" in d.result.getErrorMessage()
    d.addErrback(lambda _: None)


def test_pooled_runs_each_call_in_the_pool():
    calls = []

    class Pool:
        def run(self, fn, *args):
            calls.append(args)
            return defer.succeed(fn(*args))

    d = Pooled({"a": 1}, Pool()).get("a")
    assert d.result == 1 and calls == [("a",)]


def test_then_chains_plain_values_now_and_deferreds_later():
    assert then(2, lambda v, k: v * k, 3) == 6
    d = defer.Deferred()
    chained = then(d, lambda v, k: v * k, 3)
    d.callback(2)
    assert chained.result == 6
