"""Copy a relay's state between store backends (files <-> Redis), then verify.

Meant for `chatmailctl store migrate --to redis|files`, which opens both
stores and calls `migrate(source, target, now, token_max_age)`. It works
through the roles only: `Accounts` to read, `Transfer` to export and import
what Accounts and PushQueue do not hand out. Copied:

- each account's password hash, enforceE2EEincoming flag and last-login day,
  with `Transfer.import_account`, which never overwrites;
- its push tokens that have not expired, with their last-set times (a token
  the target has with a later time keeps it);
- the pending push notifications, due at once on the target, keeping their
  deadline and attempt count; an item already copied (same id) is skipped.

So the copy can run while the daemons serve from the source, and again after
the switch. Suggested order: migrate while the relay runs on the source;
switch `storage` and restart the daemons; migrate again at once to pick up
accounts, logins, tokens and notifications of the window in between. On that
second run an account present on both sides with the same hash gets the
later of the two last-login days; one with a different hash (claimed on both
sides in the window) keeps the target's and is reported as a conflict.
Notifications are copied, not moved: one the source sent after the first run
may be sent once more by the target (a phone woken twice), none is lost.

Verification reads every source account back from the target, checks every
copied token and notification is there, and counts both sides;
`MigrationReport.ok` is true only when nothing copyable is missing.
"""

import time
from dataclasses import dataclass, field
from typing import List, Optional

from ..days import DAY
from .errors import AccountDamaged
from .pushitems import push_ident
from .roles import Accounts, Store

DEFAULT_TOKEN_MAX_AGE = 90 * DAY


@dataclass
class MigrationReport:
    source_accounts: int = 0
    copied: int = 0
    already_present: int = 0
    last_login_updated: int = 0
    conflicts: List[str] = field(default_factory=list)
    damaged: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    target_accounts: int = 0
    tokens_source: int = 0
    tokens_copied: int = 0
    tokens_missing: List[str] = field(default_factory=list)  # addresses
    pending_source: int = 0
    pending_copied: int = 0
    pending_skipped: int = 0  # their account is not on the target
    pending_missing: int = 0

    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.missing or self.tokens_missing
                    or self.pending_missing) and \
            self.target_accounts >= self.source_accounts - len(self.damaged)

    def summary(self) -> str:
        return (f"{self.source_accounts} accounts in source, {self.copied} copied, "
                f"{self.already_present} already present ({self.last_login_updated} "
                f"last-login days updated), {len(self.conflicts)} conflicts, "
                f"{len(self.damaged)} damaged (not copied), {len(self.missing)} missing; "
                f"{self.target_accounts} accounts in target; "
                f"{self.tokens_source} live push tokens in source, {self.tokens_copied} "
                f"copied, {len(self.tokens_missing)} accounts missing tokens; "
                f"{self.pending_source} pending notifications in source, "
                f"{self.pending_copied} copied, {self.pending_skipped} without an account "
                f"(not copied), {self.pending_missing} missing")


def migrate(source: Store, target: Store, now: Optional[float] = None,
            token_max_age: float = DEFAULT_TOKEN_MAX_AGE) -> MigrationReport:
    now = time.time() if now is None else now
    report = MigrationReport()
    for addr in source.accounts.iter_accounts():
        report.source_accounts += 1
        if _copy(source, target, addr, report):
            _copy_tokens(source, target, addr, now, token_max_age, report)
    _verify(source, target, report)
    _copy_pending(source, target, now, report)
    return report


def _copy(source: Store, target: Store, addr: str, report: MigrationReport) -> bool:
    """Copy one account; True if the target now has it with the source's hash."""
    try:
        password = source.accounts.get_password(addr)
    except AccountDamaged:
        report.damaged.append(addr)
        return False
    if password is None:  # deleted since it was listed
        report.source_accounts -= 1
        return False
    day = source.accounts.get_last_login(addr) or 0
    enforce = source.accounts.enforces_e2ee_incoming(addr)
    if target.transfer.import_account(addr, password, day, enforce):
        report.copied += 1
        return True
    report.already_present += 1
    accounts = target.accounts
    if accounts.get_password(addr) != password:
        report.conflicts.append(addr)
        return False
    if day > (accounts.get_last_login(addr) or 0):
        accounts.set_last_login(addr, day)
        report.last_login_updated += 1
    return True


def _copy_tokens(source: Store, target: Store, addr, now, max_age, report) -> None:
    """Copy the live tokens oldest first, each stamped with its own last-set time."""
    times = source.transfer.token_times(addr)
    live = {t: ts for t, ts in times.items() if now - ts < max_age}
    report.tokens_source += len(live)
    have = target.transfer.token_times(addr)
    room = len(live) + len(have)  # keep every token: the source already capped them
    for token, ts in sorted(live.items(), key=lambda kv: kv[1]):
        if have.get(token, float("-inf")) < ts:
            target.push.add_token(addr, token, ts, max_age, room)
            report.tokens_copied += 1
    have = target.transfer.token_times(addr)
    if any(token not in have for token in live):
        report.tokens_missing.append(addr)


def _copy_pending(source: Store, target: Store, now, report) -> None:
    """Copy the queue; items of a conflicting account (another owner on the
    target) or of one the target lacks are skipped."""
    items = list(source.transfer.export_push())  # small: items live hours at most
    report.pending_source = len(items)
    foreign = set(report.conflicts) | set(report.damaged)
    wanted = [i for i in items
              if i.addr not in foreign and _has_account(target.accounts, i.addr)]
    report.pending_skipped = len(items) - len(wanted)
    report.pending_copied = target.transfer.import_push(wanted, now)
    present = {push_ident(item.id) for item in target.transfer.export_push()}
    report.pending_missing = sum(1 for i in wanted if push_ident(i.id) not in present)


def _has_account(accounts: Accounts, addr: str) -> bool:
    try:
        return accounts.get_password(addr) is not None
    except (AccountDamaged, ValueError):
        return False


def _verify(source: Store, target: Store, report: MigrationReport) -> None:
    skip = set(report.damaged) | set(report.conflicts)
    for addr in source.accounts.iter_accounts():
        if addr in skip:
            continue
        try:
            expected = source.accounts.get_password(addr)
        except AccountDamaged:
            continue  # damaged since it was copied: reported by the next run
        try:
            found = target.accounts.get_password(addr)
        except AccountDamaged:
            found = None
        if expected is not None and found != expected:
            report.missing.append(addr)
    report.target_accounts = sum(1 for _ in target.accounts.iter_accounts())
