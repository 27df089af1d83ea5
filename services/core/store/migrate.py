"""Copy a relay's accounts between store backends (files <-> Redis), then verify.

Meant for `chatmailctl store migrate --to redis|files`, which opens both
stores from the config and calls `migrate(source, target)`. Each account's
password hash, enforceE2EEincoming flag and last-login day are copied with
`Store.import_account`, which never overwrites: the copy can run while the
daemons serve from the source, and again after the switch.

Suggested order without downtime surprises: migrate while the relay runs on
the source; switch `storage` and restart the daemons; migrate again to pick
up accounts created and logins recorded in between. On that second run an
account present on both sides with the same hash gets the later of the two
last-login days; one with a different hash (claimed on both sides in the
window) keeps the target's and is reported as a conflict.

Verification reads every source account back from the target and counts
both sides; `MigrationReport.ok` is true only when each copyable account is
on the target with the source's hash.
"""

from dataclasses import dataclass, field
from typing import List

from .base import AccountDamaged, Store


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

    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.missing) and \
            self.target_accounts >= self.source_accounts - len(self.damaged)

    def summary(self) -> str:
        return (f"{self.source_accounts} accounts in source, {self.copied} copied, "
                f"{self.already_present} already present ({self.last_login_updated} "
                f"last-login days updated), {len(self.conflicts)} conflicts, "
                f"{len(self.damaged)} damaged (not copied), {len(self.missing)} missing; "
                f"{self.target_accounts} accounts in target")


def migrate(source: Store, target: Store) -> MigrationReport:
    report = MigrationReport()
    for addr in source.iter_accounts():
        report.source_accounts += 1
        _copy(source, target, addr, report)
    _verify(source, target, report)
    return report


def _copy(source: Store, target: Store, addr: str, report: MigrationReport) -> None:
    try:
        password = source.get_password(addr)
    except AccountDamaged:
        report.damaged.append(addr)
        return
    if password is None:  # deleted since it was listed
        report.source_accounts -= 1
        return
    day = source.get_last_login(addr) or 0
    enforce = source.enforces_e2ee_incoming(addr)
    if target.import_account(addr, password, day, enforce):
        report.copied += 1
        return
    report.already_present += 1
    if target.get_password(addr) != password:
        report.conflicts.append(addr)
    elif day > (target.get_last_login(addr) or 0):
        target.set_last_login(addr, day)
        report.last_login_updated += 1


def _verify(source: Store, target: Store, report: MigrationReport) -> None:
    skip = set(report.damaged) | set(report.conflicts)
    for addr in source.iter_accounts():
        if addr in skip:
            continue
        try:
            expected = source.get_password(addr)
        except AccountDamaged:
            continue  # damaged since it was copied: reported by the next run
        try:
            found = target.get_password(addr)
        except AccountDamaged:
            found = None
        if expected is not None and found != expected:
            report.missing.append(addr)
    report.target_accounts = sum(1 for _ in target.iter_accounts())
