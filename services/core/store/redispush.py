"""The Redis store's push state: device tokens and the persistent push queue.

    <prefix>tokens:<addr>       HASH  token -> last-set unix time
                                      TTL: token max age after the newest set
    <prefix>notify:due          ZSET  item id -> due time (claimed: end of lease)
    <prefix>notify:items        HASH  item id -> JSON {addr, token, deadline,
                                      attempts, queued_at}
    <prefix>notify:addr:<addr>  SET   the ids of an address's queued items
                                      (so deleting an account finds them)

The queue has no TTL: an item leaves only when a notifier completes it (sent,
token gone, or past its deadline) or its account is deleted. Claiming is one
Lua script: it takes the due items (earliest first) and moves each one's due
time to the end of its lease, so of concurrent notifiers on several hosts
exactly one gets an item, and an item whose notifier died (SIGKILL, host
lost) is due again when the lease ends: nothing is lost, at worst a push is
sent twice. Item ids (uuid4 hex) stay the same across claims.

Times are the caller's `now` (tests use fixed clocks); the token hash's TTL is
relative to it (EXPIRE, not EXPIREAT), so Redis' own clock only counts the
seconds. Adding a token, queueing, claiming, rescheduling and deleting an
account are scripts (redis_scripts.py); completing is a MULTI transaction.
"""

import json
import math
import uuid
from typing import Dict, Iterator

from .base import PendingNotification, PushItem, push_ident


def _encode(item: PushItem, attempts: int) -> str:
    return json.dumps({"addr": item.addr, "token": item.token, "deadline": item.deadline,
                       "attempts": attempts, "queued_at": item.queued_at})


def _decode(ident: str, raw: str) -> PushItem:
    data = json.loads(raw)
    return PushItem(ident, str(data["addr"]), str(data["token"]), float(data["deadline"]),
                    int(data["attempts"]), float(data.get("queued_at", 0)))


def _seconds(value: float) -> str:
    """A time or span as Redis and Lua read it (repr keeps every digit)."""
    return repr(float(value))


class RedisPushMixin:
    """Token and queue methods of RedisStore (needs keys, scripts, _redis, _check)."""

    # -- tokens ------------------------------------------------------------
    def token_times(self, addr) -> Dict[str, float]:
        key = self.keys.tokens(self._check(addr))
        with self._redis() as r:
            raw = r.hgetall(key)
        times = {}
        for token, ts in raw.items():
            try:
                times[token] = float(ts)
            except ValueError:
                pass  # damaged: dropped by the next add
        return times

    def get_tokens(self, addr, now, max_age):
        times = self.token_times(addr)
        fresh = [t for t, ts in times.items() if now - ts < max_age]
        return sorted(fresh, key=lambda t: times[t], reverse=True)

    def add_token(self, addr, token, now, max_age, max_tokens):
        addr = self._check(addr)
        keys = [self.keys.account(addr), self.keys.tokens(addr)]
        age = _seconds(max_age) if math.isfinite(max_age) else "-1"
        with self._redis():
            done = self.scripts["add_token"](keys=keys, args=[token, _seconds(now), age,
                                                              int(max_tokens)])
        return bool(done)

    def remove_token(self, addr, token):
        key = self.keys.tokens(self._check(addr))
        with self._redis() as r:
            return bool(r.hdel(key, token))

    # -- queue -------------------------------------------------------------
    def _queue_keys(self, addr):
        k = self.keys
        return [k.account(addr), k.queue_of(addr), k.queue_due(), k.queue_items()]

    def enqueue_push(self, addr, tokens, now, deadline):
        addr = self._check(addr)
        if not tokens:
            return 0
        args = [_seconds(now)]
        for token in tokens:
            args += [uuid.uuid4().hex, _encode(PushItem("", addr, token, deadline, 0, now), 0)]
        with self._redis():
            return int(self.scripts["enqueue_push"](keys=self._queue_keys(addr), args=args))

    def claim_push(self, now, limit, lease):
        keys = [self.keys.queue_due(), self.keys.queue_items()]
        args = [_seconds(now), int(limit), _seconds(now + lease)]
        with self._redis():
            reply = self.scripts["claim_push"](keys=keys, args=args)
        next_due = None if reply[0] is None else float(reply[0])
        items = []
        for ident, raw in zip(reply[1::2], reply[2::2]):
            try:
                items.append(_decode(ident, raw))
            except (ValueError, KeyError, TypeError):
                self._drop(ident, None)  # damaged: cannot be sent
        return items, next_due

    def reschedule_push(self, item, due, attempts):
        keys = [self.keys.queue_due(), self.keys.queue_items()]
        with self._redis():
            self.scripts["reschedule_push"](keys=keys, args=[item.id, _seconds(due),
                                                             _encode(item, attempts)])

    def complete_push(self, item):
        self._drop(item.id, item.addr)

    def _drop(self, ident, addr):
        with self._redis() as r:
            pipe = r.pipeline(transaction=True)
            pipe.zrem(self.keys.queue_due(), ident).hdel(self.keys.queue_items(), ident)
            if addr is not None:
                pipe.srem(self.keys.queue_of(addr), ident)
            pipe.execute()

    # -- what admin tools, account deletion and migration see ---------------
    def _scan_items(self) -> Iterator[PushItem]:
        seen, cursor = set(), 0
        while True:
            with self._redis() as r:
                cursor, page = r.hscan(self.keys.queue_items(), cursor, count=1000)
            for ident, raw in page.items():
                if ident in seen:
                    continue  # HSCAN may return an entry twice
                seen.add(ident)
                try:
                    yield _decode(ident, raw)
                except (ValueError, KeyError, TypeError):
                    continue
            if cursor == 0:
                return

    def iter_pending_notifications(self):
        for item in self._scan_items():
            yield PendingNotification(item.id, item.addr, int(item.queued_at))

    def export_push(self):
        return self._scan_items()

    def import_push(self, items, due):
        queued = 0
        for item in items:
            try:
                addr = self._check(item.addr)
            except ValueError:
                continue  # not an address of ours: it has no account here
            args = [push_ident(item.id), _seconds(due), _encode(item, item.attempts)]
            with self._redis():
                queued += self.scripts["import_push"](keys=self._queue_keys(addr), args=args)
        return queued
