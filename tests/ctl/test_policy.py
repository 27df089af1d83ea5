"""chatmailctl's decisions from tables: inactivity and the expiry day."""

import pytest

from chatmail_services.ctl.policy import expiry_day, inactive

DAY = 86400
NOW = 1_700_000_000


@pytest.mark.parametrize("last_login,days,expected", [
    (None, 30, False),  # no account: never listed as inactive
    (NOW - 31 * DAY, 30, True),
    (NOW - 30 * DAY, 30, False),  # exactly on the limit: still active
    (NOW - 2 * DAY, 30, False),
    (0, 1, True),  # a Redis record that expired reads as day 0
])
def test_inactive(last_login, days, expected):
    assert inactive(last_login, NOW, days) is expected


def test_expiry_day_counts_from_the_login_day(make_config):
    config = make_config(expire={"delete_inactive_users_after": 10})
    assert expiry_day(NOW, config) == NOW // DAY * DAY + 10 * DAY
