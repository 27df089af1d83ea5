"""Copying a relay's accounts files -> Redis and Redis -> files, then verifying."""

import time

import pytest

from chatmail_services.core.store import day_of, open_store
from chatmail_services.core.store.migrate import migrate

DOMAIN = "chat.example.org"
TODAY = day_of(time.time())


@pytest.fixture(params=["files->redis", "redis->files"])
def pair(request, make_config, fresh_redis):
    files = open_store(make_config())
    redis_store = open_store(make_config(storage=fresh_redis.url))
    yield (files, redis_store) if request.param == "files->redis" else (redis_store, files)
    redis_store.close()


def fill(store, count, day=TODAY):
    addrs = [f"acct{i:05d}@{DOMAIN}" for i in range(count)]
    for i, addr in enumerate(addrs):
        store.import_account(addr, f"{{SHA512-CRYPT}}$6$s${i}", day - i % 7 * 86400, i % 3 != 0)
    return addrs


def state(store, addr):
    return (store.get_password(addr), store.get_last_login(addr),
            store.enforces_e2ee_incoming(addr))


def test_every_account_is_copied_with_hash_flag_and_day(pair):
    source, target = pair
    addrs = fill(source, 50)
    report = migrate(source, target)
    assert report.ok, report.summary()
    assert (report.source_accounts, report.copied, report.target_accounts) == (50, 50, 50)
    for addr in addrs:
        assert state(target, addr) == state(source, addr)


def test_second_run_copies_only_what_is_new_and_later_logins(pair):
    source, target = pair
    addrs = fill(source, 10)
    migrate(source, target)
    source.create_account(f"latecomer@{DOMAIN}", "{X}late", time.time())
    source.set_last_login(addrs[3], TODAY + 86400)
    report = migrate(source, target)
    assert report.ok, report.summary()
    assert (report.copied, report.already_present, report.last_login_updated) == (1, 10, 1)
    assert target.get_last_login(addrs[3]) == TODAY + 86400
    assert target.get_password(f"latecomer@{DOMAIN}") == "{X}late"


def test_an_address_claimed_on_both_sides_is_a_conflict_and_keeps_the_target(pair):
    source, target = pair
    fill(source, 3)
    addr = f"acct00001@{DOMAIN}"
    target.create_account(addr, "{X}target-won", time.time())
    report = migrate(source, target)
    assert report.conflicts == [addr] and not report.ok
    assert target.get_password(addr) == "{X}target-won"


def test_damaged_accounts_are_reported_not_copied(make_config, fresh_redis):
    config = make_config()
    source, target = open_store(config), open_store(make_config(storage=fresh_redis.url))
    fill(source, 2)
    broken = config.mailboxes_path / f"broken123@{DOMAIN}"
    broken.mkdir()
    (broken / "password").write_bytes(b"")
    report = migrate(source, target)
    assert report.damaged == [f"broken123@{DOMAIN}"]
    assert report.ok and report.copied == 2
    assert target.get_password(f"broken123@{DOMAIN}") is None


def test_missing_copy_fails_verification(pair):
    source, target = pair

    class Forgetful:  # a stand-in target that accepts imports but keeps nothing
        def __getattr__(self, name):
            return getattr(target, name)

        def import_account(self, *args):
            return True

    fill(source, 2)
    report = migrate(source, Forgetful())
    assert not report.ok
    assert len(report.missing) == 2 and report.target_accounts == 0
