"""lastlogin's day logic from a table: Dovecot's seconds in, a UTC day or a refusal out."""

import pytest

from chatmail_services.core.failures import Refused
from chatmail_services.lastlogin.policy import login_day

DAY = 86400


@pytest.mark.parametrize("value,expected", [
    ("1700000000", 1700000000 // DAY * DAY),
    ("0", 0),
    (str(DAY - 1), 0),
    (str(DAY), DAY),
    (str((1 << 33) - 1), ((1 << 33) - 1) // DAY * DAY),
])
def test_a_login_counts_for_its_utc_day(value, expected):
    assert login_day(value) == expected


@pytest.mark.parametrize("value,reason", [
    ("yesterday", "not_unix_time"), ("", "not_unix_time"), ("1.5", "not_unix_time"),
    (None, "not_unix_time"), ("-5", "out_of_range"), (str(1 << 33), "out_of_range"),
    ("1700000000000", "out_of_range"),  # milliseconds
])
def test_implausible_values_are_refused(value, reason):
    refused = login_day(value)
    assert isinstance(refused, Refused) and refused.reason == reason and refused.text
