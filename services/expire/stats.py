"""What one expiry run saw and did, and its Prometheus textfile for node_exporter.

The textfile is written with prometheus_client's `write_to_textfile` (a
temporary file renamed into place, so node_exporter never reads half a file)
from a registry of its own. No label names an account.
"""

import bisect
from collections import Counter
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from ..core.days import DAY

ACTIVE_WITHIN_DAYS = (1, 7, 30, 90)
# Upper bounds of the message size classes (bytes); the last class is open.
SIZE_BOUNDS = (10_000, 100_000, 200_000, 1_000_000, 10_000_000)
SIZE_LABELS = ("10k", "100k", "200k", "1M", "10M", "larger")


@dataclass
class Tally:
    now: float
    dry_run: bool
    accounts: int = 0
    active: Counter = field(default_factory=Counter)  # days -> accounts
    not_accounts: int = 0
    messages: Counter = field(default_factory=Counter)  # size class -> count
    message_bytes: Counter = field(default_factory=Counter)  # size class -> bytes
    other_bytes: int = 0
    deleted_accounts: int = 0
    deleted_messages: Counter = field(default_factory=Counter)  # reason -> count
    deleted_bytes: int = 0
    problems: Counter = field(default_factory=Counter)  # kind -> count
    seconds: float = 0.0

    def add_account(self, last_login: float) -> None:
        self.accounts += 1
        for days in ACTIVE_WITHIN_DAYS:
            if last_login >= self.now - days * DAY:
                self.active[days] += 1

    def add_kept(self, messages) -> None:
        for m in messages:
            label = SIZE_LABELS[bisect.bisect_left(SIZE_BOUNDS, m.size)]
            self.messages[label] += 1
            self.message_bytes[label] += m.size

    def add_deleted(self, message, reason: str) -> None:
        self.deleted_messages[reason] += 1
        self.deleted_bytes += message.size

    def summary(self) -> str:
        kept = sum(self.messages.values())
        deleted = sum(self.deleted_messages.values())
        verb = "would delete" if self.dry_run else "deleted"
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.deleted_messages.items()))
        problems = ", ".join(f"{n} {k}" for k, n in sorted(self.problems.items())) or "none"
        return (f"{verb} {self.deleted_accounts} of {self.accounts + self.deleted_accounts}"
                f" accounts and {deleted} of {kept + deleted} messages"
                f" ({reasons or 'none'}; {self.deleted_bytes} bytes) in {self.seconds:.1f} s;"
                f" problems: {problems}" + (" (dry run: nothing removed)" if self.dry_run else ""))


def _gauge(registry, name, doc, labels=(), values=None, value=None):
    g = Gauge(name, doc, labels, registry=registry)
    if values is None:
        g.set(value)
    for key, v in (values or {}).items():
        g.labels(key).set(v)
    return g


def registry_of(t: Tally) -> CollectorRegistry:
    r = CollectorRegistry()
    zero_sizes = dict.fromkeys(SIZE_LABELS, 0)
    _gauge(r, "chatmail_accounts", "Accounts after the last expiry run", value=t.accounts)
    _gauge(r, "chatmail_accounts_active", "Accounts whose last login is within N days",
           ["within_days"], {str(d): t.active[d] for d in ACTIVE_WITHIN_DAYS})
    _gauge(r, "chatmail_mailboxes_not_accounts",
           "Mailbox directories that are no account (left untouched)", value=t.not_accounts)
    _gauge(r, "chatmail_messages", "Messages kept, by size class (upper bound)", ["size"],
           {**zero_sizes, **t.messages})
    _gauge(r, "chatmail_message_bytes", "Bytes of messages kept, by size class", ["size"],
           {**zero_sizes, **t.message_bytes})
    _gauge(r, "chatmail_storage_bytes", "Bytes in mailboxes", ["kind"],
           {"messages": sum(t.message_bytes.values()), "other": t.other_bytes})
    _gauge(r, "chatmail_expire_deleted_accounts", "Accounts deleted by the last run",
           value=t.deleted_accounts)
    _gauge(r, "chatmail_expire_deleted_messages", "Messages deleted by the last run",
           ["reason"], {**dict.fromkeys(("old", "large", "quota"), 0), **t.deleted_messages})
    _gauge(r, "chatmail_expire_deleted_bytes", "Bytes of messages deleted by the last run",
           value=t.deleted_bytes)
    _gauge(r, "chatmail_expire_problems", "Problems met by the last run", ["kind"],
           {**dict.fromkeys(("not_account", "permission", "vanished", "error"), 0),
            **t.problems})
    _gauge(r, "chatmail_expire_duration_seconds", "Duration of the last run", value=t.seconds)
    _gauge(r, "chatmail_expire_last_run_timestamp_seconds", "When the last run finished",
           value=t.now + t.seconds)
    _gauge(r, "chatmail_expire_dry_run", "1 if the last run removed nothing (no --remove)",
           value=int(t.dry_run))
    return r


def write_textfile(path: str, tally: Tally) -> None:
    write_to_textfile(path, registry_of(tally))
