"""Day arithmetic shared by every daemon: the one definition of a day.

Last-login records, expiry limits and token ages count whole UTC days in
unix seconds; a day here is always 86400 seconds (unix time has no leap
seconds).
"""

DAY = 86400


def day_of(timestamp: float) -> int:
    """The unix time of the UTC midnight that starts the day of `timestamp`."""
    return int(timestamp) // DAY * DAY
