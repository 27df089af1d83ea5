"""The files backend's persistent push queue: `<mailboxes_dir>/pending_notifications/`.

A queue file is named `<due in ms>.<id>` and holds one item's JSON
(store/pushitems.py). Claiming renames it to a later due time (the lease):
rename is atomic, so of concurrent claimers exactly one wins, and an item
whose claimer crashed is simply due again when the lease ends. Items of the
reference relay (named by a bare hex id, holding `addr\\nstart_ts\\ntoken`)
are taken over on their first claim.
"""

import os
import uuid
from typing import Optional

from ..errors import StoreError
from ..pushitems import (
    DECODE_ERRORS, PendingNotification, PushItem, decode_item, encode_item, push_ident,
)
from .layout import Layout, fsync_dir, write_durable_temp

QUEUE_DIR = "pending_notifications"
LEGACY_DEADLINE = 5 * 3600  # the reference relay's fixed drop deadline
STALE_TEMP = 3600  # seconds after which a crashed write's temp file is removed


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


def _legacy_item(name: str, raw: bytes) -> PushItem:
    addr, start, token = raw.split(b"\n", 2)
    return PushItem(name, addr.decode("utf-8"), token.decode("utf-8"),
                    int(start) + LEGACY_DEADLINE, 0, int(start))


class QueueDir:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.path = layout.root / QUEUE_DIR

    def enqueue(self, addr, tokens, now, deadline) -> int:
        try:
            self.path.mkdir(mode=0o700, exist_ok=True)
            for token in tokens:
                self._write(_due_name(now, uuid.uuid4().hex),
                            PushItem("", addr, token, deadline, 0, now))
            fsync_dir(self.path)
        except OSError as e:
            raise StoreError(f"cannot queue notification: {e.strerror}") from None
        return len(tokens)

    def claim(self, now, limit, lease):
        try:
            names = os.listdir(self.path)
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
            os.rename(self.path / name, self.path / new)
            return decode_item(new, (self.path / new).read_bytes())
        except FileNotFoundError:
            return None  # another claimer won
        except DECODE_ERRORS:
            (self.path / new).unlink(missing_ok=True)  # damaged: cannot be sent
            return None

    def _adopt_legacy(self, name: str, new: str) -> Optional[PushItem]:
        path = self.path / name
        try:
            old = _legacy_item(name, path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            path.unlink(missing_ok=True)
            return None
        item = PushItem(new, old.addr, old.token, old.deadline, 0, old.queued_at)
        self._write(new, item)
        path.unlink(missing_ok=True)
        return item

    def reschedule(self, item, due, attempts) -> None:
        # Rename first: an item removed meanwhile (its account deleted) stays gone.
        new = _due_name(due, item.id.partition(".")[2])
        try:
            os.rename(self.path / item.id, self.path / new)
            self._write(new, item, attempts)
            fsync_dir(self.path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StoreError(f"cannot reschedule notification: {e.strerror}") from None

    def complete(self, item) -> None:
        # No directory fsync: an unlink lost in a crash only means one more POST.
        try:
            (self.path / item.id).unlink(missing_ok=True)
        except OSError as e:
            raise StoreError(f"cannot complete notification: {e.strerror}") from None

    def _write(self, name, item: PushItem, attempts=None) -> None:
        tmp = write_durable_temp(self.path, encode_item(item, attempts).encode())
        os.replace(tmp, self.path / name)

    def _remove_stale_temps(self, names, now) -> None:
        for name in names:
            if name.startswith(".tmp."):
                path = self.path / name
                try:
                    if path.stat().st_mtime < now - STALE_TEMP:
                        path.unlink()
                except OSError:
                    pass  # gone already, or not ours to judge: the next claim retries

    # -- what admin tools, account deletion and migration see -----------------
    def _files(self, in_progress: bool):
        """Queue files; with `in_progress` also the reference relay's `<id>.tmp`
        files that are still being written (our own `.tmp.*` never: renaming
        them into place must not fail)."""
        try:
            entries = os.scandir(self.path)
        except FileNotFoundError:
            return
        with entries:
            for entry in entries:
                if _parse_name(entry.name) is not None or (
                        in_progress and entry.name.endswith(".tmp")
                        and not entry.name.startswith(".")):
                    yield entry

    def items(self, in_progress: bool = False):
        """Every readable item, ours or the reference relay's, with its token."""
        for entry in self._files(in_progress):
            item = _read_item(entry)
            if item is not None:
                yield entry, item

    def pending(self):
        for _, item in self.items():
            yield PendingNotification(item.id, item.addr, int(item.queued_at))

    def import_items(self, items, due) -> int:
        items = list(items)
        if not items:
            return 0
        try:
            self.path.mkdir(mode=0o700, exist_ok=True)
            present = {push_ident(e.name) for e in self._files(in_progress=False)}
            queued = 0
            for item in items:
                ident = push_ident(item.id)
                if ident in present or not self.layout.is_account(item.addr):
                    continue
                self._write(_due_name(due, ident), item)
                present.add(ident)
                queued += 1
            fsync_dir(self.path)
        except OSError as e:
            raise StoreError(f"cannot queue notification: {e.strerror}") from None
        return queued

    def purge(self, addrs) -> None:
        """Remove every queued item of `addrs` (their accounts are deleted)."""
        for entry, item in self.items(in_progress=True):
            if item.addr in addrs:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    pass  # the notifier finished it meanwhile


def _read_item(entry) -> Optional[PushItem]:
    """The item of one queue file, None if it vanished meanwhile or is damaged."""
    try:
        with open(entry.path, "rb") as f:
            raw = f.read(64 * 1024)
    except (FileNotFoundError, IsADirectoryError):
        return None
    except OSError as e:
        raise StoreError(f"cannot read the notification queue: {e.strerror}") from None
    try:
        return decode_item(entry.name, raw) if raw.startswith(b"{") else \
            _legacy_item(entry.name, raw)
    except DECODE_ERRORS:
        return None
