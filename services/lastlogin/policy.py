"""What a last-login record means: the UTC day of the login, nothing finer.

Dovecot's `last_login` plugin sends unix seconds on every login; we keep only
the day (core/days.py), so a day's many logins cost one write, and expiry
counts inactivity in whole days. A value that is not a plausible unix time in
seconds is refused (a `Refused` value; the wire decides the answer).
"""

from typing import Union

from ..core.days import day_of
from ..core.failures import Refused

MAX_TIMESTAMP = 1 << 33  # year 2242; larger values are milli/micro seconds or junk


def login_day(value) -> Union[int, Refused]:
    """The day (unix time of UTC midnight) of a login at `value` seconds."""
    try:
        ts = int(value)
    except (TypeError, ValueError):
        return Refused("not_unix_time", "last-login value is not a unix time")
    if not 0 <= ts < MAX_TIMESTAMP:
        return Refused("out_of_range", "last-login value is out of range (expected seconds)")
    return day_of(ts)
