"""The files backend's persistent push queue: `<mailboxes_dir>/pending_notifications/`.

A queue file is named `<due in ms>.<id>` and holds one item's JSON
(store/pushitems.py). Claiming renames it to a later due time (the lease):
rename is atomic, so of concurrent claimers exactly one wins, and an item
whose claimer crashed is simply due again when the lease ends. Items of the
reference relay (named by a bare hex id, holding `addr\\nstart_ts\\ntoken`)
are taken over on their first claim.

Claims read an in-memory heap of due times instead of listing the directory
each time (a 5000-item backlog made every claim a 5000-entry listing). The
heap is rebuilt from the directory at the first claim and every `RECONCILE`
seconds, so items another process queued or removed are seen then; an entry
whose file is gone (claimed elsewhere, its account deleted) is skipped when
its rename fails, as before. The files stay the truth: a restart loses
nothing.
"""

import heapq
import os
import threading
import uuid
from typing import Optional

from ..errors import StoreError
from ..pushitems import (
    DECODE_ERRORS, PendingNotification, PushItem, decode_item, encode_item, push_ident,
)
from .layout import Layout, fsync_dir, read_small, write_durable_temp

QUEUE_DIR = "pending_notifications"
LEGACY_DEADLINE = 5 * 3600  # the reference relay's fixed drop deadline
STALE_TEMP = 3600  # seconds after which a crashed write's temp file is removed
RECONCILE = 5.0  # seconds between listings of the directory for the due-heap


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
        self._dir = str(self.path) + "/"  # the per-item paths: strings, not Paths
        self._lock = threading.Lock()  # callers run in a thread pool
        self._heap = []  # (due, id, file name); stale entries are skipped
        self._names = {}  # id -> its current file name, as this process knows it
        self._listed_at = None

    def _known(self, due: float, ident: str, name: str) -> None:
        with self._lock:
            self._names[ident] = name
            heapq.heappush(self._heap, (due, ident, name))

    def enqueue(self, addr, tokens, now, deadline) -> int:
        names = [_due_name(now, uuid.uuid4().hex) for _ in tokens]
        try:
            self.path.mkdir(mode=0o700, exist_ok=True)
            for name, token in zip(names, tokens):
                self._write(name, PushItem("", addr, token, deadline, 0, now))
            fsync_dir(self.path)  # one directory fsync for the tokens queued together
        except OSError as e:
            raise StoreError(f"cannot queue notification: {e.strerror}") from None
        for name in names:
            self._known(now, name.partition(".")[2], name)
        return len(tokens)

    def claim(self, now, limit, lease):
        with self._lock:
            if self._listed_at is None or not 0 <= now - self._listed_at < RECONCILE:
                self._relist(now)
            claimed = []
            while self._heap and len(claimed) < limit and self._heap[0][0] <= now:
                _, ident, name = heapq.heappop(self._heap)
                if self._names.get(ident) != name:
                    continue  # completed, rescheduled or claimed since
                item = self._claim_one(name, ident, now + lease)
                if item is None:
                    del self._names[ident]
                    continue
                claimed.append(item)
                self._names[ident] = item.id
            next_due = self._next_due()  # of the items left, not of those just claimed
            for item in claimed:  # due again when their lease ends
                heapq.heappush(self._heap, (now + lease, item.id.partition(".")[2], item.id))
            return claimed, next_due

    def _next_due(self):
        while self._heap and self._names.get(self._heap[0][1]) != self._heap[0][2]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def _relist(self, now) -> None:
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            names = []
        except OSError as e:
            raise StoreError(f"cannot read the push queue: {e.strerror}") from None
        self._heap = [p + (n,) for n in names if (p := _parse_name(n)) is not None]
        heapq.heapify(self._heap)
        self._names = {ident: name for _, ident, name in self._heap}
        self._listed_at = now
        self._remove_stale_temps(names, now)

    def _claim_one(self, name: str, ident: str, until: float) -> Optional[PushItem]:
        new = _due_name(until, ident)
        if "." not in name:
            return self._adopt_legacy(name, new)
        try:
            os.rename(self._dir + name, self._dir + new)
            return decode_item(new, read_small(self._dir + new))
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
        ident = item.id.partition(".")[2]
        new = _due_name(due, ident)
        try:
            os.rename(self.path / item.id, self.path / new)
            self._write(new, item, attempts)
            fsync_dir(self.path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StoreError(f"cannot reschedule notification: {e.strerror}") from None
        self._known(due, ident, new)

    def complete(self, item) -> None:
        # No directory fsync: an unlink lost in a crash only means one more POST.
        try:
            os.unlink(self._dir + item.id)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StoreError(f"cannot complete notification: {e.strerror}") from None
        with self._lock:
            ident = item.id.partition(".")[2]
            if self._names.get(ident) == item.id:
                del self._names[ident]

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
                name = _due_name(due, ident)
                self._write(name, item)
                self._known(due, ident, name)
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
