"""What chatmailctl decides, apart from how it prints: which accounts count as
inactive, when an account expires, whether registration is open. Pure, or
reading only the config's own files; commands.py writes the answers."""

import os
from typing import Optional

from ..core.days import DAY, day_of


def inactive(last_login: Optional[int], now: float, days: int) -> bool:
    """Whether an account last seen on `last_login` had no login for `days` days."""
    return last_login is not None and last_login < now - days * DAY


def expiry_day(last_login: int, config) -> int:
    """The day after which chatmail-expire deletes the account, unless it logs in."""
    return day_of(last_login) + config.expire.delete_inactive_users_after * DAY


def registration_state(config) -> str:
    path = config.doveauth.nocreate_file
    return f"blocked ({path} exists)" if os.path.exists(path) else "open"
