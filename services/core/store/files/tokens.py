"""Push device tokens in `<mailboxes_dir>/<addr>/metadata.json` (docs/storage.md).

    {"devicetoken": {"<token>": <unix ts>}}

The reference relay's list form `{"devicetoken": [...]}` is read (its tokens
count as set now) and rewritten as a mapping on the next write; other keys
of the file are kept. A write takes an exclusive `flock` on the account
directory (threads and processes alike), reads, changes and atomically
replaces metadata.json, so concurrent SETMETADATA calls never lose a token.
"""

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..errors import StoreError
from .layout import Layout, read_small, replace_durable

METADATA = "metadata.json"
TOKENS_KEY = "devicetoken"


@contextmanager
def _locked_dir(path: Path):
    """Exclusive flock on a directory; FileNotFoundError if it does not exist."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _load_metadata(path) -> dict:
    try:
        data = json.loads(read_small(path))
    except FileNotFoundError:
        return {}
    except ValueError:
        return {}  # damaged: rewritten whole by the next set
    except OSError as e:
        raise StoreError(f"cannot read {METADATA}: {e.strerror}") from None
    return data if isinstance(data, dict) else {}


def _tokens_of(data: dict, now: float) -> Dict[str, float]:
    """token -> last-set time; a legacy list counts as set `now`."""
    raw = data.get(TOKENS_KEY)
    if isinstance(raw, list):
        return {t: now for t in raw if isinstance(t, str) and t}
    if not isinstance(raw, dict):
        return {}
    return {t: float(ts) for t, ts in raw.items()
            if isinstance(t, str) and t and isinstance(ts, (int, float))}


def live(tokens: Dict[str, float], now: float, max_age: float) -> List[str]:
    """Unexpired tokens, newest first; a future stamp (clock stepped back) is fresh."""
    fresh = [t for t, ts in tokens.items() if now - ts < max_age]
    return sorted(fresh, key=lambda t: tokens[t], reverse=True)


def token_times(layout: Layout, addr: str, now: float) -> Dict[str, float]:
    """Every stored token of `addr` with its last-set time ({} without account)."""
    return _tokens_of(_load_metadata(layout.file_path(addr, METADATA)), now)


Change = Callable[[Dict[str, float]], Optional[Dict[str, float]]]


def change_tokens(layout: Layout, addr: str, now: float, change: Change) -> Optional[bool]:
    """Apply change(tokens) -> new tokens (None: no write) under the account lock.
    True if written, False if `change` wanted no write, None without an account."""
    home = layout.home(addr)
    try:
        with _locked_dir(home):
            data = _load_metadata(home / METADATA)
            tokens = change(_tokens_of(data, now))
            if tokens is None:
                return False
            data[TOKENS_KEY] = {t: int(ts) for t, ts in tokens.items()}
            replace_durable(home / METADATA, json.dumps(data).encode())
            return True
    except FileNotFoundError:
        return None  # no account: create nothing
    except OSError as e:
        raise StoreError(f"cannot write {METADATA}: {e.strerror}") from None
