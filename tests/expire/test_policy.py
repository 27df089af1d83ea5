"""Expiry decisions from tables: ages and sizes in, deletions out."""

import pytest

from chatmail_services.core.days import DAY
from chatmail_services.core.maildir import Message
from chatmail_services.expire.policy import Limits, account_expired, plan_messages

NOW = 1_700_000_000.0
LIMITS = Limits(inactive_before=NOW - 90 * DAY, old_before=NOW - 20 * DAY,
                large_before=NOW - 7 * DAY, recent_after=NOW - DAY, quota_target=1_000_000)


def msg(days_ago, size=1000, name=None):
    return Message(name or f"m{days_ago}-{size}", NOW - days_ago * DAY, size)


@pytest.mark.parametrize("days_ago,size,reason", [
    (19.9, 1000, None),
    (20.1, 1000, "old"),
    (6.9, 300_000, None),
    (7.1, 300_000, "large"),
    (7.1, 200_000, None),   # "over 200 kB": exactly 200000 stays
    (7.1, 200_001, "large"),
    (0.5, 10**9, None),     # recent: never, whatever its size
])
def test_age_and_size_rules(days_ago, size, reason):
    plan = plan_messages([msg(days_ago, size)], LIMITS)
    assert [r for _, r in plan] == ([reason] if reason else [])


def test_quota_trims_oldest_first_to_the_target():
    messages = [msg(d, 300_000) for d in (1.5, 3, 2, 5)]  # 1.2 MB, target 1 MB
    limits = Limits(LIMITS.inactive_before, LIMITS.old_before, NOW - 30 * DAY,
                    LIMITS.recent_after, 1_000_000)
    plan = plan_messages(messages, limits)
    assert [(m.path, r) for m, r in plan] == [
        ("m5-300000", "quota")]


def test_quota_never_deletes_recent_messages():
    messages = [msg(0.1, 600_000, "a"), msg(0.2, 600_000, "b"), msg(2, 1000, "old")]
    limits = Limits(LIMITS.inactive_before, LIMITS.old_before, LIMITS.large_before,
                    LIMITS.recent_after, 1_000_000)
    assert [(m.path, r) for m, r in plan_messages(messages, limits)] == [("old", "quota")]


def test_age_deletions_count_towards_the_quota():
    messages = [msg(25, 900_000, "old"), msg(2, 500_000, "keep")]
    assert [(m.path, r) for m, r in plan_messages(messages, LIMITS)] == [("old", "old")]


@pytest.mark.parametrize("login_days_ago,expired", [(89, False), (91, True), (None, False)])
def test_inactive_accounts_expire(login_days_ago, expired):
    last = None if login_days_ago is None else NOW - login_days_ago * DAY
    assert account_expired(last, LIMITS) is expired
