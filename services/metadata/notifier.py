"""The push notifier: drains the persistent push queue into the notification service.

Every notification Dovecot handed us is already in the store's push queue
before Dovecot got its answer. This service claims due items under a lease,
POSTs each token (at most `notify_concurrency` at once) and by the answer
completes the item (200), drops the dead token (410) or reschedules it with
back-off until its deadline. The schedule as operators see it is
docs/push.md. Every store or HTTP failure is logged and retried later:
nothing stops the loop; a store outage the store already logged
(`Temporary.logged`) is not logged again.
"""

import random

from prometheus_client import Counter
from twisted.application.service import Service
from twisted.logger import Logger

from ..core.failures import Temporary

LEASE_MARGIN = 10.0  # seconds a claim outlives the request timeout
STORE_RETRY = 5.0  # seconds before trying again after a store failure

NOTIFICATIONS = Counter("chatmail_metadata_notifications_total",
                        "Push notification attempts by outcome", ["outcome"])


def retry_delay(attempts: int, minimum: float, maximum: float, rand=random.random) -> float:
    """Seconds before retry number `attempts` (1, 2, ...): doubling from `minimum`,
    capped at `maximum`, with jitter in [50%, 100%] so retries do not bunch up."""
    base = min(maximum, minimum * 2 ** min(attempts - 1, 60))
    return base * (0.5 + rand() / 2)


class Notifier(Service):
    log = Logger()

    def __init__(self, policy, store, pool, poster, clock, settings, rand=random.random):
        self.policy = policy
        self.store = store
        self.pool = pool
        self.poster = poster
        self.clock = clock
        self.settings = settings
        self.rand = rand
        self.lease = settings.notify_timeout + LEASE_MARGIN
        self.inflight = 0
        self._claiming = False
        self._again = False
        self._timer = None
        self._completing = []  # done, not yet removed from the queue
        self._removing = False

    def startService(self):
        super().startService()
        self.wake()

    def stopService(self):
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- claiming ----------------------------------------------------------
    def wake(self) -> None:
        """Claim and send what is due now (new items were queued, a slot freed up)."""
        if not self.running:
            return
        if self._claiming:
            self._again = True
            return
        free = self.settings.notify_concurrency - self.inflight
        if free <= 0:
            return  # a finishing send wakes us again
        self._claiming = True
        d = self.pool.run(self.store.claim_push, self.clock.seconds(), free, self.lease)
        d.addCallbacks(self._claimed, self._store_failed, errbackArgs=("claim",))
        d.addErrback(self._unexpected)
        d.addBoth(self._claim_done)

    def _claimed(self, result):
        items, next_due = result
        for item in items:
            self._start(item)
        if next_due is not None:
            self._wake_at(next_due)

    def _claim_done(self, _):
        self._claiming = False
        if self._again:
            self._again = False
            self.wake()

    def _wake_at(self, when: float) -> None:
        """Make sure we wake by `when` (an earlier wake-up is kept)."""
        if not self.running:
            return
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= when:
                return
            self._timer.cancel()
        self._timer = self.clock.callLater(max(0.0, when - self.clock.seconds()), self._tick)

    def _tick(self):
        self._timer = None
        self.wake()

    # -- sending -----------------------------------------------------------
    def _start(self, item) -> None:
        if self.clock.seconds() > item.deadline:
            self._done(item, "dropped")
            return
        self.inflight += 1
        d = self.poster.post(item.token)
        d.addCallbacks(self._answered, self._failed, callbackArgs=(item,), errbackArgs=(item,))
        d.addErrback(self._unexpected)
        d.addBoth(self._sent)

    def _sent(self, _):
        self.inflight -= 1
        self.wake()

    def _answered(self, status: int, item) -> None:
        if status == 200:
            self._done(item, "delivered")
        elif status == 410:
            # Even if the removal fails, resending a dead token is pointless.
            d = self.pool.run(self.policy.token_gone, item.addr, item.token)
            d.addErrback(self._store_failed, "token removal")
            d.addCallback(lambda _: self._done(item, "token_gone"))
        else:
            self.log.warn("notification service answered {status}, will retry", status=status)
            self._retry(item)

    def _failed(self, failure, item) -> None:
        self.log.warn("notification request failed, will retry: {why}",
                      why=failure.getErrorMessage() or failure.type.__name__)
        self._retry(item)

    def _retry(self, item) -> None:
        now = self.clock.seconds()
        if now >= item.deadline:
            self._done(item, "dropped")
            return
        attempts = item.attempts + 1
        s = self.settings
        due = min(item.deadline, now + retry_delay(attempts, s.notify_retry_min,
                                                   s.notify_retry_max, self.rand))
        NOTIFICATIONS.labels("retried").inc()
        d = self.pool.run(self.store.reschedule_push, item, due, attempts)
        d.addCallbacks(lambda _: self._wake_at(due), self._store_failed,
                       errbackArgs=("reschedule",))

    def _done(self, item, outcome: str) -> None:
        NOTIFICATIONS.labels(outcome).inc()
        if outcome == "dropped":
            self.log.error("notification dropped: not delivered before its deadline")
        self._completing.append(item)
        if not self._removing:
            self._remove_completed()

    def _remove_completed(self) -> None:
        """Remove the done items from the queue in one pool call; the ones done
        meanwhile wait for the next (one thread hand-off for many in a drain)."""
        items, self._completing = self._completing, []
        self._removing = True
        d = self.pool.run(self.store.complete_pushes, items)
        d.addErrback(self._store_failed, "complete")
        d.addBoth(self._removed)

    def _removed(self, _):
        self._removing = False
        if self._completing:
            self._remove_completed()

    # -- failures: logged, and the loop goes on ------------------------------
    def _store_failed(self, failure, what: str) -> None:
        # The item stays claimed; its lease ends and it is due again. Wake up
        # by then at the latest, and sooner to pick up other work.
        if not failure.check(Temporary):
            self.log.failure("push queue {what} failed", failure, what=what)
        elif not failure.value.logged:
            self.log.error("push queue {what} failed: {why}", what=what,
                           why=failure.getErrorMessage())
        self._wake_at(self.clock.seconds() + STORE_RETRY)

    def _unexpected(self, failure) -> None:
        self.log.failure("notifier bug (the loop goes on)", failure)
