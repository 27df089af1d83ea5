"""What only the Redis store has: key layout, TTLs, prefixes, outages, config.

Against a real redis-server on loopback (tests/redisserver.py); the outage
tests start their own server so they can kill, freeze and restart it.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from twisted.logger import Logger

from chatmail_services.core.config import RedisConfig, load_config
from chatmail_services.core.days import day_of
from chatmail_services.core.store import AccountDamaged, StoreError, StoreUnavailable, open_store
from chatmail_services.core.store.redis.client import glob_escape, last_login_ttl

from ..redisserver import RedisServer

DOMAIN = "chat.example.org"
HASH = "{SHA512-CRYPT}$6$salt$hash"
PREFIX = f"chatmail:{DOMAIN}:"


@pytest.fixture
def make_store(make_config, fresh_redis):
    stores = []

    def make(url=None, **redis_section):
        config = make_config(storage=url or fresh_redis.url, redis=redis_section)
        stores.append(open_store(config))
        return stores[-1]

    yield make
    for s in stores:
        s.close()


@pytest.fixture
def store(make_store):
    return make_store()


@pytest.fixture
def r(fresh_redis):
    return fresh_redis.client()


def test_open_store_selects_redis_with_derived_prefix(store):
    assert store.backend == "redis"
    assert store.accounts.conn.keys.prefix == PREFIX


def test_account_layout_and_ttls(store, r):
    addr, now = "abcdefghi@" + DOMAIN, time.time()
    store.accounts.create_account(addr, HASH, now)
    account, record = PREFIX + "account:" + addr, PREFIX + "lastlogin:" + addr
    assert sorted(r.keys("*")) == [account, record]
    assert r.hgetall(account) == {"password": HASH, "enforceE2EEincoming": "1"}
    assert r.ttl(account) == -1  # accounts never expire by TTL
    assert r.get(record) == str(day_of(now))
    assert r.expiretime(record) == day_of(now) + last_login_ttl(90)


def test_last_login_ttl_follows_the_inactivity_limit():
    assert last_login_ttl(90) == 180 * 86400
    assert last_login_ttl(10) == 40 * 86400


def test_same_day_login_does_not_write(store, r):
    addr, now = "sameday12@" + DOMAIN, time.time()
    store.accounts.create_account(addr, HASH, now)
    before = r.info("persistence")["rdb_changes_since_last_save"]
    assert store.accounts.set_last_login(addr, day_of(now)) is True
    assert r.info("persistence")["rdb_changes_since_last_save"] == before
    store.accounts.set_last_login(addr, day_of(now) + 86400)
    assert r.info("persistence")["rdb_changes_since_last_save"] > before


def test_expired_last_login_record_reads_as_long_ago(store, r):
    addr = "inactive1@" + DOMAIN
    store.accounts.create_account(addr, HASH, time.time())
    r.delete(PREFIX + "lastlogin:" + addr)  # what its TTL does after 180 days
    assert store.accounts.get_last_login(addr) == 0
    assert store.accounts.get_password(addr) == HASH


def test_import_of_a_day_older_than_the_ttl_keeps_the_account_without_record(store, r):
    addr = "ancient12@" + DOMAIN
    assert store.transfer.import_account(addr, HASH, day_of(time.time()) - 400 * 86400, True)
    assert store.accounts.get_password(addr) == HASH
    assert store.accounts.get_last_login(addr) == 0
    assert not r.exists(PREFIX + "lastlogin:" + addr)


def test_relays_sharing_one_redis_do_not_see_each_other(make_store):
    a, b = make_store(), make_store(key_prefix="relay-b:")
    addr = "sharedred@" + DOMAIN
    a.accounts.create_account(addr, HASH, time.time())
    assert b.accounts.get_password(addr) is None
    assert list(b.accounts.iter_accounts()) == []
    b.accounts.create_account(addr, "{X}b", time.time())
    assert a.accounts.get_password(addr) == HASH


def test_prefix_with_glob_characters_matches_only_itself(make_store):
    star, plain = make_store(key_prefix="r*:"), make_store(key_prefix="rx:")
    plain.accounts.create_account("plainacct@" + DOMAIN, HASH, time.time())
    star.accounts.create_account("staracct1@" + DOMAIN, HASH, time.time())
    assert list(star.accounts.iter_accounts()) == ["staracct1@" + DOMAIN]
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"


def test_key_of_the_wrong_type_is_damage(store, r):
    addr = "wrongtype@" + DOMAIN
    r.set(PREFIX + "account:" + addr, "oops")
    with pytest.raises(AccountDamaged):
        store.accounts.get_password(addr)
    with pytest.raises(AccountDamaged):
        store.accounts.create_account(addr, HASH, time.time())


def test_scripts_are_reloaded_after_redis_forgets_them(store, r):
    store.accounts.create_account("scripted1@" + DOMAIN, HASH, time.time())
    r.script_flush()  # what a Redis restart does to the script cache
    assert store.accounts.create_account("scripted2@" + DOMAIN, HASH, time.time()) == HASH


def test_the_tools_open_the_store_without_the_daemons_reactor_client(tmp_path):
    """wire.py (hiredis, Twisted's endpoints and TLS) serves the daemons' reads;
    chatmailctl and chatmail-expire start without importing it."""
    (tmp_path / "c.yaml").write_text(f"mail_domain: {DOMAIN}\n"
                                     f"mailboxes_dir: {tmp_path / 'mail'}\n"
                                     "storage: redis://127.0.0.1:1/0\n")
    script = ("import sys; from chatmail_services.core.config import load_config; "
              "from chatmail_services.core.store import open_store; "
              f"store = open_store(load_config({str(tmp_path / 'c.yaml')!r})); "
              "print(store.backend, sorted(m for m in sys.modules if m.endswith('.wire') "
              "or m == 'twisted.internet.endpoints'))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out == "redis []\n"


def test_password_from_file(make_config, tmp_path):
    server = RedisServer(password="s3cret pass").start()
    try:
        (tmp_path / "redis.pass").write_text("s3cret pass\n")
        good = open_store(make_config(storage=server.url,
                                      redis={"password_file": str(tmp_path / "redis.pass")}))
        assert good.accounts.create_account("withauth1@" + DOMAIN, HASH, time.time()) == HASH
        unauthenticated = open_store(make_config(storage=server.url))
        with pytest.raises(StoreUnavailable):
            unauthenticated.accounts.get_password("withauth1@" + DOMAIN)
    finally:
        server.stop()


def test_unreadable_password_file_names_the_key(make_config, tmp_path):
    with pytest.raises(StoreError, match="redis.password_file: cannot read"):
        open_store(make_config(storage="redis://127.0.0.1:1/0",
                               redis={"password_file": str(tmp_path / "absent")}))


def test_rediss_url_uses_tls_with_the_ca_file(make_config, tmp_path):
    store = open_store(make_config(storage="rediss://127.0.0.1:1/0",
                                   redis={"tls_ca_file": str(tmp_path / "ca.pem")}))
    pool = store.accounts.conn.client.connection_pool
    assert pool.connection_kwargs["ssl_ca_certs"] == str(tmp_path / "ca.pem")
    assert "SSL" in pool.connection_class.__name__


def test_example_config_documents_the_redis_defaults():
    config = load_config(Path(__file__).parents[2] / "conf" / "chatmail.yaml")
    assert config.redis == RedisConfig()


def test_token_layout_and_ttl_relative_to_the_newest(store, r):
    addr, now = "tokenlay1@" + DOMAIN, 1_700_000_000
    store.accounts.create_account(addr, HASH, time.time())
    store.push.add_token(addr, "phone", now + 300, 1000, 5)
    store.push.add_token(addr, "tablet", now, 1000, 5)  # the clock stepped back 300 s
    key = PREFIX + "tokens:" + addr
    assert r.hgetall(key) == {"phone": repr(float(now + 300)), "tablet": repr(float(now))}
    assert 1200 < r.ttl(key) <= 1300  # max_age after the newest set, by Redis' clock
    store.push.add_token(addr, "phone", now + 1100, 1000, 5)  # tablet expired: dropped on write
    assert r.hkeys(key) == ["phone"] and 990 < r.ttl(key) <= 1000


def test_queue_layout_and_nothing_queued_without_an_account(store, r):
    addr, ghost = "queuelay1@" + DOMAIN, "ghostghos@" + DOMAIN
    store.accounts.create_account(addr, HASH, time.time())
    assert store.push.enqueue_push(ghost, ["t"], 100, 200) == 0
    assert r.keys(f"*{ghost}*") == [] and not r.exists(PREFIX + "notify:items")
    store.push.enqueue_push(addr, ["t"], 100, 200)
    (ident,) = r.hkeys(PREFIX + "notify:items")
    assert r.zrange(PREFIX + "notify:due", 0, -1, withscores=True) == [(ident, 100.0)]
    assert r.smembers(PREFIX + "notify:addr:" + addr) == {ident}
    (item,), _ = store.push.claim_push(100, 5, 30)
    assert item.id == ident and r.zscore(PREFIX + "notify:due", ident) == 130.0
    store.push.complete_push(item)
    assert r.keys(PREFIX + "notify:*") == []


def test_damaged_queue_entries_are_dropped_not_sent(store, r):
    addr = "damagedq1@" + DOMAIN
    store.accounts.create_account(addr, HASH, time.time())
    store.push.enqueue_push(addr, ["good"], 100, 200)
    r.zadd(PREFIX + "notify:due", {"no-item": 50, "bad-json": 60})
    r.hset(PREFIX + "notify:items", "bad-json", "{not json")
    items, next_due = store.push.claim_push(100, 10, 30)
    assert [i.token for i in items] == ["good"] and next_due is None
    assert r.zrange(PREFIX + "notify:due", 0, -1) == [items[0].id]


def test_delete_account_removes_its_home_on_this_host(make_config, fresh_redis):
    config = make_config(storage=fresh_redis.url)
    store, addr = open_store(config), "homeless1@" + DOMAIN
    store.accounts.create_account(addr, HASH, time.time())
    (config.mailboxes_path / addr / "cur").mkdir(parents=True)
    assert store.accounts.delete_account(addr) is True
    assert not (config.mailboxes_path / addr).exists()
    assert [p.name for p in config.mailboxes_path.iterdir()] == []
    (config.mailboxes_path / addr).mkdir()  # mail left without an account is removed too
    assert store.accounts.delete_account(addr) is True and store.accounts.delete_account(addr) is False


# -- outages -----------------------------------------------------------------

@pytest.fixture
def own_server():
    server = RedisServer(durable=True).start()
    yield server
    server.stop()


class Watched:
    """A store whose outage log lines are kept in `events`."""

    def __init__(self, store):
        self.store, self.events = store, []
        store.accounts.conn.health.log = Logger(observer=self.events.append)

    def __getattr__(self, role):
        return getattr(self.store, role)


@pytest.fixture
def outage_store(make_store, own_server):
    return Watched(make_store(own_server.url, socket_timeout=0.5))


def messages(events):
    return [e["log_format"] for e in events]


def test_redis_down_is_unavailable_logged_once_then_recovers(outage_store, own_server):
    s, addr = outage_store, "survivor1@" + DOMAIN
    s.accounts.create_account(addr, HASH, time.time())
    own_server.kill()
    for call in (lambda: s.accounts.get_password(addr),
                 lambda: s.accounts.create_account("newcomer1@" + DOMAIN, HASH, time.time()),
                 lambda: s.accounts.set_last_login(addr, day_of(time.time())),
                 lambda: list(s.accounts.iter_accounts()),
                 lambda: s.push.add_token(addr, "t", time.time(), 100, 5),
                 lambda: s.push.get_tokens(addr, time.time(), 100),
                 lambda: s.push.enqueue_push(addr, ["t"], time.time(), time.time() + 9),
                 lambda: s.push.claim_push(time.time(), 5, 30),
                 lambda: s.accounts.delete_account(addr),
                 lambda: list(s.push.iter_pending_notifications()),
                 lambda: s.send_rate.check_send_rate(addr, time.time(), 60, 10)):
        with pytest.raises(StoreUnavailable):
            call()
    assert len(s.events) == 1 and "unreachable" in messages(s.events)[0]
    own_server.start()
    assert s.accounts.get_password(addr) == HASH  # same store object: no restart needed
    assert s.accounts.get_password("newcomer1@" + DOMAIN) is None
    assert len(s.events) == 2 and "reachable again" in messages(s.events)[1]


def test_frozen_redis_times_out_as_unavailable(outage_store, own_server):
    watcher = own_server.client()  # connected before the freeze: counts the store's
    accepted = watcher.info("stats")["total_connections_received"]
    own_server.pause()
    try:
        with pytest.raises(StoreUnavailable):
            outage_store.accounts.get_password("frozen123@" + DOMAIN)
    finally:
        own_server.resume()
    assert outage_store.accounts.get_password("frozen123@" + DOMAIN) is None
    assert [m for m in messages(outage_store.events) if "reachable again" in m]
    # At most one try and one retry, each on a connection of its own, as
    # docs/storage.md says, then the read after: 3 with redis-py 8 (the venv),
    # 2 with Debian 13's 6.1, which does not retry a timeout. redis-py's health
    # check on connect made it 5: a PING with a retry of its own in each try.
    assert 2 <= watcher.info("stats")["total_connections_received"] - accepted <= 2 + 1


@pytest.mark.parametrize("section,message", [
    ({"socket_timeout": 0}, "redis.socket_timeout: must be more than 0"),
    ({"key_prefix": ["x"]}, "redis.key_prefix: expected a string"),
    ({"bogus": 1}, "redis.bogus: unknown key"),
])
def test_bad_redis_section_names_the_key(make_config, section, message):
    from chatmail_services.core.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_config(storage="redis://127.0.0.1:6379/0", redis=section)
