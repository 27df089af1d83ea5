"""What chatmailctl decides, apart from how it prints: which accounts count as
inactive, and when an account expires. Pure; commands.py writes the answers
(the registration mode: registration.py)."""

from typing import Optional

from ..core.days import DAY, day_of


def inactive(last_login: Optional[int], now: float, days: int) -> bool:
    """Whether an account last seen on `last_login` had no login for `days` days."""
    return last_login is not None and last_login < now - days * DAY


def expiry_day(last_login: int, config) -> int:
    """The day after which chatmail-expire deletes the account, unless it logs in."""
    return day_of(last_login) + config.expire.delete_inactive_users_after * DAY
