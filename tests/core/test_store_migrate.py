"""Copying a relay's accounts files -> Redis and Redis -> files, then verifying."""

import time
from dataclasses import replace

import pytest

from chatmail_services.core.days import day_of
from chatmail_services.core.store import open_store
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
        store.transfer.import_account(addr, f"{{SHA512-CRYPT}}$6$s${i}", day - i % 7 * 86400, i % 3 != 0)
    return addrs


def state(store, addr):
    return (store.accounts.get_password(addr), store.accounts.get_last_login(addr),
            store.accounts.enforces_e2ee_incoming(addr))


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
    source.accounts.create_account(f"latecomer@{DOMAIN}", "{X}late", time.time())
    source.accounts.set_last_login(addrs[3], TODAY + 86400)
    report = migrate(source, target)
    assert report.ok, report.summary()
    assert (report.copied, report.already_present, report.last_login_updated) == (1, 10, 1)
    assert target.accounts.get_last_login(addrs[3]) == TODAY + 86400
    assert target.accounts.get_password(f"latecomer@{DOMAIN}") == "{X}late"


def test_an_address_claimed_on_both_sides_is_a_conflict_and_keeps_the_target(pair):
    source, target = pair
    fill(source, 3)
    addr = f"acct00001@{DOMAIN}"
    target.accounts.create_account(addr, "{X}target-won", time.time())
    report = migrate(source, target)
    assert report.conflicts == [addr] and not report.ok
    assert target.accounts.get_password(addr) == "{X}target-won"


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
    assert target.accounts.get_password(f"broken123@{DOMAIN}") is None


def test_missing_copy_fails_verification(pair):
    source, target = pair

    class Forgetful:  # a stand-in Transfer that accepts imports but keeps nothing
        def __getattr__(self, name):
            return getattr(target.transfer, name)

        def import_account(self, *args):
            return True

    fill(source, 2)
    report = migrate(source, replace(target, transfer=Forgetful()))
    assert not report.ok
    assert len(report.missing) == 2 and report.target_accounts == 0


NOW = time.time()
MAX_AGE = 90 * 86400


def test_live_tokens_are_copied_with_their_times(pair):
    source, target = pair
    addr, other = fill(source, 2)
    source.push.add_token(addr, "old-phone", NOW - 10 * 86400, MAX_AGE, 16)
    source.push.add_token(addr, "tablet", NOW - 60, MAX_AGE, 16)
    source.push.add_token(other, "expired", NOW - 100 * 86400, MAX_AGE, 16)
    report = migrate(source, target, NOW, MAX_AGE)
    assert report.ok, report.summary()
    assert (report.tokens_source, report.tokens_copied) == (2, 2)
    assert target.push.get_tokens(addr, NOW, MAX_AGE) == ["tablet", "old-phone"]
    assert sorted(target.transfer.token_times(addr).values()) == pytest.approx(
        sorted(source.transfer.token_times(addr).values()), abs=1)
    assert target.push.get_tokens(other, NOW, MAX_AGE) == []


def test_a_token_refreshed_on_the_target_keeps_its_later_time(pair):
    source, target = pair
    (addr,) = fill(source, 1)
    source.push.add_token(addr, "phone", NOW - 5000, MAX_AGE, 16)
    migrate(source, target, NOW, MAX_AGE)
    target.push.add_token(addr, "phone", NOW, MAX_AGE, 16)  # set again after the switch
    report = migrate(source, target, NOW, MAX_AGE)
    assert report.ok and report.tokens_copied == 0
    assert target.transfer.token_times(addr)["phone"] == pytest.approx(NOW, abs=1)


def test_pending_notifications_are_copied_once_and_due_at_once(pair):
    source, target = pair
    a, b = fill(source, 2)
    source.push.enqueue_push(a, ["tok-a1", "tok-a2"], NOW - 100, NOW + 3600)
    source.push.enqueue_push(b, ["tok-b"], NOW - 50, NOW + 3600)
    (claimed,), _ = source.push.claim_push(NOW, 1, 60)
    source.push.reschedule_push(claimed, NOW + 600, 2)
    report = migrate(source, target, NOW, MAX_AGE)
    assert report.ok, report.summary()
    assert (report.pending_source, report.pending_copied) == (3, 3)
    assert migrate(source, target, NOW, MAX_AGE).pending_copied == 0  # second run
    items, _ = target.push.claim_push(NOW, 10, 60)
    assert sorted((i.addr, i.token, i.deadline) for i in items) == sorted(
        [(a, "tok-a1", NOW + 3600), (a, "tok-a2", NOW + 3600), (b, "tok-b", NOW + 3600)])
    assert {i.token: i.attempts for i in items}[claimed.token] == 2


def test_notifications_of_accounts_not_on_the_target_are_skipped_not_missing(pair):
    source, target = pair
    (addr,) = fill(source, 1)
    source.push.enqueue_push(addr, ["t"], NOW, NOW + 3600)
    target.accounts.create_account(addr, "{X}target-won", NOW)  # a conflict: not copied
    report = migrate(source, target, NOW, MAX_AGE)
    assert report.conflicts == [addr]  # another owner: the notification is not theirs
    assert (report.pending_copied, report.pending_skipped, report.pending_missing) == (0, 1, 0)
    assert list(target.push.iter_pending_notifications()) == []


def test_a_lost_notification_fails_verification(pair):
    source, target = pair
    (addr,) = fill(source, 1)
    source.push.enqueue_push(addr, ["t"], NOW, NOW + 3600)

    class Dropping:  # a stand-in Transfer that accepts queue imports but keeps none
        def __getattr__(self, name):
            return getattr(target.transfer, name)

        def import_push(self, items, due):
            return len(list(items))

    report = migrate(source, replace(target, transfer=Dropping()), NOW, MAX_AGE)
    assert report.pending_missing == 1 and not report.ok
    assert "1 missing" in report.summary()
