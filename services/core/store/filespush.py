"""The files store's push state: device tokens and the persistent push queue.

    <mailboxes_dir>/<addr>/metadata.json        {"devicetoken": {"<token>": <unix ts>}}
                                                (the legacy {"devicetoken": [...]} is read
                                                and rewritten as a mapping on the next write)
    <mailboxes_dir>/pending_notifications/      one file per pending notification

Token writes take an exclusive `flock` on the account directory (threads and
processes alike), read, change and atomically replace metadata.json, so
concurrent SETMETADATA calls for one address never lose a token.

A queue file is named `<due in ms>.<id>` and holds JSON
`{"addr", "token", "deadline", "attempts", "queued_at"}`. Claiming renames it to a later
due time (the lease): rename is atomic, so of concurrent claimers exactly one
wins, and an item whose claimer crashed is simply due again when the lease
ends. Items of the reference relay (named by a bare hex id, holding
`addr\\nstart_ts\\ntoken`) are taken over on their first claim.
"""

import fcntl
import json
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, Optional

from .base import PendingNotification, PushItem, StoreError, push_ident

METADATA = "metadata.json"
QUEUE_DIR = "pending_notifications"
TOKENS_KEY = "devicetoken"
LEGACY_DEADLINE = 5 * 3600  # the reference relay's fixed drop deadline
STALE_TEMP = 3600  # seconds after which a crashed write's temp file is removed


@contextmanager
def _locked_dir(path: Path):
    """Exclusive flock on a directory; FileNotFoundError if it does not exist."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _load_metadata(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes())
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


def _live(tokens: Dict[str, float], now: float, max_age: float) -> List[str]:
    """Unexpired tokens, newest first; a future stamp (clock stepped back) is fresh."""
    fresh = [t for t, ts in tokens.items() if now - ts < max_age]
    return sorted(fresh, key=lambda t: tokens[t], reverse=True)


def _due_name(due: float, ident: str) -> str:
    return f"{max(0, int(due * 1000)):013d}.{ident}"


def _parse_name(name: str):
    """(due in seconds, id) of a queue file name; due 0 for a legacy item; None for others."""
    if name.startswith("."):
        return None
    due, dot, ident = name.partition(".")
    if not dot:
        return (0.0, name) if len(name) == 32 and name.isalnum() else None
    return (int(due) / 1000, ident) if due.isdigit() and ident else None


class FilesPushMixin:
    """Token and queue methods of FilesStore (needs root, account_dir, the helpers)."""

    # -- tokens ------------------------------------------------------------
    def get_tokens(self, addr, now, max_age):
        path = self.account_dir(addr) / METADATA
        return _live(_tokens_of(_load_metadata(path), now), now, max_age)

    def token_times(self, addr):
        return _tokens_of(_load_metadata(self.account_dir(addr) / METADATA), time.time())

    def add_token(self, addr, token, now, max_age, max_tokens):
        def change(tokens):
            tokens[token] = now
            keep = _live(tokens, now, max_age)[:max_tokens]
            return {t: tokens[t] for t in keep}

        return self._change_tokens(addr, now, change) is not None

    def remove_token(self, addr, token):
        def change(tokens):
            return None if tokens.pop(token, None) is None else tokens

        return bool(self._change_tokens(addr, time.time(), change))

    def _change_tokens(self, addr, now, change):
        """Apply change(tokens) -> new tokens (None: no write) under the account lock."""
        home = self.account_dir(addr)
        try:
            with _locked_dir(home):
                data = _load_metadata(home / METADATA)
                tokens = change(_tokens_of(data, now))
                if tokens is None:
                    return False
                data[TOKENS_KEY] = {t: int(ts) for t, ts in tokens.items()}
                self._replace(home / METADATA, json.dumps(data).encode())
                return True
        except FileNotFoundError:
            return None  # no account: create nothing
        except OSError as e:
            raise StoreError(f"cannot write {METADATA}: {e.strerror}") from None

    # -- queue -------------------------------------------------------------
    @property
    def queue_dir(self) -> Path:
        return self.root / QUEUE_DIR

    def enqueue_push(self, addr, tokens, now, deadline):
        if not tokens:
            return 0
        try:
            self.queue_dir.mkdir(mode=0o700, exist_ok=True)
            for token in tokens:
                self._write_item(_due_name(now, uuid.uuid4().hex),
                                 PushItem("", addr, token, deadline, 0, now))
            self._fsync_dir(self.queue_dir)
        except OSError as e:
            raise StoreError(f"cannot queue notification: {e.strerror}") from None
        return len(tokens)

    def claim_push(self, now, limit, lease):
        try:
            names = os.listdir(self.queue_dir)
        except FileNotFoundError:
            return [], None
        except OSError as e:
            raise StoreError(f"cannot read the push queue: {e.strerror}") from None
        pending = sorted(p + (n,) for n in names if (p := _parse_name(n)) is not None)
        self._remove_stale_temps(names, now)
        claimed, rest = [], []
        for due, ident, name in pending:
            if due > now or len(claimed) >= limit:
                rest.append(due)
                continue
            item = self._claim_one(name, ident, now + lease)
            if item is not None:
                claimed.append(item)
        return claimed, (min(rest) if rest else None)

    def _claim_one(self, name: str, ident: str, until: float) -> Optional[PushItem]:
        new = _due_name(until, ident)
        if "." not in name:
            return self._adopt_legacy(name, new)
        try:
            os.rename(self.queue_dir / name, self.queue_dir / new)
            return _item_from_json(new, (self.queue_dir / new).read_bytes())
        except FileNotFoundError:
            return None  # another claimer won
        except (ValueError, KeyError, TypeError):
            (self.queue_dir / new).unlink(missing_ok=True)  # damaged: cannot be sent
            return None

    def _adopt_legacy(self, name: str, new: str) -> Optional[PushItem]:
        path = self.queue_dir / name
        try:
            addr, start, token = path.read_text().split("\n", 2)
            deadline = int(start) + LEGACY_DEADLINE
        except FileNotFoundError:
            return None
        except ValueError:
            path.unlink(missing_ok=True)
            return None
        item = PushItem(new, addr, token, deadline, 0, int(start))
        self._write_item(new, item)
        path.unlink(missing_ok=True)
        return item

    def reschedule_push(self, item, due, attempts):
        # Rename first: an item removed meanwhile (its account deleted) stays gone.
        new = _due_name(due, item.id.partition(".")[2])
        try:
            os.rename(self.queue_dir / item.id, self.queue_dir / new)
            self._write_item(new, PushItem(new, item.addr, item.token, item.deadline,
                                           attempts, item.queued_at))
            self._fsync_dir(self.queue_dir)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StoreError(f"cannot reschedule notification: {e.strerror}") from None

    def complete_push(self, item):
        # No directory fsync: an unlink lost in a crash only means one more POST.
        try:
            (self.queue_dir / item.id).unlink(missing_ok=True)
        except OSError as e:
            raise StoreError(f"cannot complete notification: {e.strerror}") from None

    def _write_item(self, name, item: PushItem):
        data = {"addr": item.addr, "token": item.token, "deadline": item.deadline,
                "attempts": item.attempts, "queued_at": item.queued_at}
        tmp = self._write_temp(self.queue_dir, json.dumps(data).encode())
        os.replace(tmp, self.queue_dir / name)

    def _remove_stale_temps(self, names, now):
        for name in names:
            if name.startswith(".tmp."):
                path = self.queue_dir / name
                try:
                    if path.stat().st_mtime < now - STALE_TEMP:
                        path.unlink()
                except OSError:
                    pass  # gone already, or not ours to judge: the next claim retries

    # -- what admin tools and account deletion see of the queue -----------
    def _queue_files(self, in_progress: bool):
        """Queue files; with `in_progress` also the reference relay's `<id>.tmp`
        files that are still being written (our own `.tmp.*` never: renaming
        them into place must not fail)."""
        try:
            entries = os.scandir(self.queue_dir)
        except FileNotFoundError:
            return
        with entries:
            for entry in entries:
                if _parse_name(entry.name) is not None or (
                        in_progress and entry.name.endswith(".tmp")
                        and not entry.name.startswith(".")):
                    yield entry

    def iter_pending_notifications(self):
        for entry in self._queue_files(in_progress=False):
            item = _read_queue_file(entry)
            if item is not None:
                yield item

    def export_push(self):
        for entry in self._queue_files(in_progress=False):
            item = _read_queue_file(entry, with_token=True)
            if item is not None:
                yield item

    def import_push(self, items, due):
        items = list(items)
        if not items:
            return 0
        try:
            self.queue_dir.mkdir(mode=0o700, exist_ok=True)
            present = {push_ident(e.name) for e in self._queue_files(in_progress=False)}
            queued = 0
            for item in items:
                ident = push_ident(item.id)
                if ident in present or not self._is_account(item.addr):
                    continue
                self._write_item(_due_name(due, ident), item)
                present.add(ident)
                queued += 1
            self._fsync_dir(self.queue_dir)
        except OSError as e:
            raise StoreError(f"cannot queue notification: {e.strerror}") from None
        return queued

    def _is_account(self, addr) -> bool:
        try:
            return self.get_password(addr) is not None
        except (ValueError, StoreError):  # not an address of ours, or damaged
            return False

    def _purge_queue(self, addrs) -> None:
        for entry in self._queue_files(in_progress=True):
            item = _read_queue_file(entry)
            if item is not None and item.addr in addrs:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    pass  # the notifier finished it meanwhile


def _item_from_json(name: str, raw: bytes) -> PushItem:
    data = json.loads(raw)
    return PushItem(name, str(data["addr"]), str(data["token"]), float(data["deadline"]),
                    int(data["attempts"]), float(data.get("queued_at", 0)))


def _read_queue_file(entry, with_token=False):
    """Address and queue time of one queue file (ours or the reference relay's)
    as a PendingNotification, or the whole PushItem `with_token` (migration);
    None if it vanished meanwhile or is damaged."""
    try:
        with open(entry.path, "rb") as f:
            raw = f.read(64 * 1024)
    except (FileNotFoundError, IsADirectoryError):
        return None
    except OSError as e:
        raise StoreError(f"cannot read the notification queue: {e.strerror}") from None
    try:
        if raw.startswith(b"{"):
            item = _item_from_json(entry.name, raw)
        else:
            addr, start, token = raw.split(b"\n", 2)
            item = PushItem(entry.name, addr.decode("utf-8"), token.decode("utf-8"),
                            int(start) + LEGACY_DEADLINE, 0, int(start))
    except (ValueError, KeyError, TypeError):
        return None
    return item if with_token else PendingNotification(item.id, item.addr, int(item.queued_at))
