"""The Redis backend's PushQueue and Transfer: `<prefix>tokens:<addr>` and
the `<prefix>notify:*` keys (docs/storage.md).

Adding a token, queueing, claiming, rescheduling and deleting an account are
scripts (scripts.py); completing is a MULTI transaction. Claiming moves each
due item's due time to the end of its lease, so of concurrent notifiers on
several hosts exactly one gets an item, and an item whose notifier died is
due again when the lease ends. Item ids (uuid4 hex) stay the same across
claims. Times are the caller's `now`; the token hash's TTL is relative to it
(EXPIRE, not EXPIREAT), so Redis' own clock only counts the seconds.
"""

import math
import uuid
from typing import Dict, Iterator

from ..pushitems import (
    DECODE_ERRORS, PendingNotification, PushItem, decode_item, encode_item, push_ident,
)
from ..roles import PushQueue, Transfer
from .client import RedisConn


def _seconds(value: float) -> str:
    """A time or span as Redis and Lua read it (repr keeps every digit)."""
    return repr(float(value))


def token_times_of(raw: dict) -> Dict[str, float]:
    """token -> time set, from the token hash's fields."""
    times = {}
    for token, ts in raw.items():
        try:
            times[token] = float(ts)
        except ValueError:
            pass  # damaged: dropped by the next add
    return times


def fresh_tokens(times: Dict[str, float], now: float, max_age: float) -> list:
    """The tokens younger than `max_age`, newest first."""
    fresh = [t for t, ts in times.items() if now - ts < max_age]
    return sorted(fresh, key=lambda t: times[t], reverse=True)


class RedisPushQueue(PushQueue):
    def __init__(self, conn: RedisConn):
        self.conn = conn
        self.keys = conn.keys

    # -- tokens ------------------------------------------------------------
    def token_times(self, addr) -> Dict[str, float]:
        key = self.keys.tokens(self.conn.check(addr))
        with self.conn.guard() as r:
            return token_times_of(r.hgetall(key))

    def get_tokens(self, addr, now, max_age):
        return fresh_tokens(self.token_times(addr), now, max_age)

    def add_token(self, addr, token, now, max_age, max_tokens):
        addr = self.conn.check(addr)
        keys = [self.keys.account(addr), self.keys.tokens(addr)]
        age = _seconds(max_age) if math.isfinite(max_age) else "-1"
        return bool(self.conn.run("add_token", keys, [token, _seconds(now), age,
                                                      int(max_tokens)]))

    def remove_token(self, addr, token):
        key = self.keys.tokens(self.conn.check(addr))
        with self.conn.guard() as r:
            return bool(r.hdel(key, token))

    # -- queue -------------------------------------------------------------
    def queue_keys(self, addr):
        k = self.keys
        return [k.account(addr), k.queue_of(addr), k.queue_due(), k.queue_items()]

    def enqueue_push(self, addr, tokens, now, deadline):
        addr = self.conn.check(addr)
        if not tokens:
            return 0
        args = [_seconds(now)]
        for token in tokens:
            args += [uuid.uuid4().hex, encode_item(PushItem("", addr, token, deadline, 0, now))]
        return int(self.conn.run("enqueue_push", self.queue_keys(addr), args))

    def claim_push(self, now, limit, lease):
        keys = [self.keys.queue_due(), self.keys.queue_items()]
        reply = self.conn.run("claim_push", keys, [_seconds(now), int(limit),
                                                   _seconds(now + lease)])
        next_due = None if reply[0] is None else float(reply[0])
        items = []
        for ident, raw in zip(reply[1::2], reply[2::2]):
            try:
                items.append(decode_item(ident, raw))
            except DECODE_ERRORS:
                self._drop(ident, None)  # damaged: cannot be sent
        return items, next_due

    def reschedule_push(self, item, due, attempts):
        keys = [self.keys.queue_due(), self.keys.queue_items()]
        self.conn.run("reschedule_push", keys, [item.id, _seconds(due),
                                                encode_item(item, attempts)])

    def complete_push(self, item):
        self._drop(item.id, item.addr)

    def complete_pushes(self, items):
        """All of them in one transaction: one round trip for a notifier's batch."""
        self._drop_all([(item.id, item.addr) for item in items])

    def _drop(self, ident, addr):
        self._drop_all([(ident, addr)])

    def _drop_all(self, idents):
        with self.conn.guard() as r:
            pipe = r.pipeline(transaction=True)
            for ident, addr in idents:
                pipe.zrem(self.keys.queue_due(), ident).hdel(self.keys.queue_items(), ident)
                if addr is not None:
                    pipe.srem(self.keys.queue_of(addr), ident)
            pipe.execute()

    def scan_items(self) -> Iterator[PushItem]:
        """Every readable item with its token (HSCAN may return one twice)."""
        seen, cursor = set(), 0
        while True:
            with self.conn.guard() as r:
                cursor, page = r.hscan(self.keys.queue_items(), cursor, count=1000)
            for ident, raw in page.items():
                if ident in seen:
                    continue
                seen.add(ident)
                try:
                    yield decode_item(ident, raw)
                except DECODE_ERRORS:
                    continue
            if cursor == 0:
                return

    def iter_pending_notifications(self):
        for item in self.scan_items():
            yield PendingNotification(item.id, item.addr, int(item.queued_at))


class RedisTransfer(Transfer):
    def __init__(self, accounts, push: RedisPushQueue):
        self.accounts, self.push, self.conn = accounts, push, push.conn

    def import_account(self, addr, password_hash, last_login_day, enforce_e2ee):
        return self.accounts.create(addr, password_hash, last_login_day, enforce_e2ee)[0]

    def token_times(self, addr):
        return self.push.token_times(addr)

    def export_push(self):
        return self.push.scan_items()

    def import_push(self, items, due):
        queued = 0
        for item in items:
            try:
                addr = self.conn.check(item.addr)
            except ValueError:
                continue  # not an address of ours: it has no account here
            args = [push_ident(item.id), _seconds(due), encode_item(item)]
            queued += self.conn.run("import_push", self.push.queue_keys(addr), args)
        return queued
