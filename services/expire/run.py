"""One expiry pass over `<mailboxes_dir>`: accounts first, then each mailbox's mail.

Streaming: one `os.scandir` of the mailboxes directory, one mailbox in memory
at a time, account deletions handed to the store in batches (its notification
queue is read once per batch). In a dry run nothing is removed and the tally
says what would have been.

A mailbox that vanishes mid-scan, a file we may not touch, a directory that is
no account (no password): counted as a problem, reported with its path only
at verbose level (paths hold addresses), and the pass goes on.
"""

import os
import time
from typing import Callable, Optional

from ..core.store import StoreError
from .mailbox import scan_mailbox
from .policy import Limits, account_expired, plan_messages
from .stats import Tally

DELETE_BATCH = 256


class Expiry:
    def __init__(self, config, store, now: float, remove: bool,
                 verbose: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.store = store
        self.limits = Limits.at(config, now)
        self.remove = remove
        self.verbose = verbose or (lambda line: None)
        self.clock = clock
        self.tally = Tally(now=now, dry_run=not remove)
        self._doomed = []

    def problem(self, kind: str, where: str) -> None:
        self.tally.problems[kind] += 1
        self.verbose(f"{kind}: {where}")

    def run(self) -> Tally:
        """Expire every mailbox under mailboxes_dir."""
        started = self.clock()
        root = self.config.mailboxes_dir
        with os.scandir(root) as entries:
            for entry in entries:
                if "@" in entry.name and entry.is_dir(follow_symlinks=False):
                    self.expire_account(entry.name, entry.path)
        self._flush_deletions()
        self.tally.seconds = self.clock() - started
        return self.tally

    def expire_account(self, addr: str, path: str) -> None:
        try:
            last_login = self.store.get_last_login(addr)
        except ValueError:  # the store refuses the name as an address of ours
            last_login = None
        except PermissionError:
            return self.problem("permission", path)
        except (OSError, StoreError):
            return self.problem("error", path)
        if last_login is None:
            self.problem("not_account", path)
            self.tally.not_accounts += 1
        elif account_expired(last_login, self.limits):
            return self._delete_account(addr)
        else:
            self.tally.add_account(last_login)
        self.expire_mailbox(path)

    def _delete_account(self, addr: str) -> None:
        self.verbose(f"{'delete' if self.remove else 'would delete'} account {addr}")
        self.tally.deleted_accounts += 1
        if self.remove:
            self._doomed.append(addr)
            if len(self._doomed) >= DELETE_BATCH:
                self._flush_deletions()

    def _flush_deletions(self) -> None:
        doomed, self._doomed = self._doomed, []
        if doomed:
            try:
                self.store.delete_accounts(doomed)
            except StoreError as e:
                self.problem("error", str(e))

    def expire_mailbox(self, path: str) -> None:
        """Delete one mailbox's old, large and over-quota messages."""
        try:
            box = scan_mailbox(path, self.problem)
        except FileNotFoundError:
            return self.problem("vanished", path)
        except PermissionError:
            return self.problem("permission", path)
        doomed = plan_messages(box.messages, self.limits)
        gone = {m.path for m, _ in doomed if self._delete_message(m.path)}
        for m, reason in doomed:
            if m.path in gone:
                self.tally.add_deleted(m, reason)
        self.tally.add_kept(m for m in box.messages if m.path not in gone)
        self.tally.other_bytes += box.other_bytes
        if gone and self.remove:
            self._unlink(os.path.join(path, "maildirsize"))

    def _delete_message(self, path: str) -> bool:
        """True if the message is gone (or would be, in a dry run)."""
        return not self.remove or self._unlink(path)

    def _unlink(self, path: str) -> bool:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False  # moved or expunged by Dovecot meanwhile
        except PermissionError:
            self.problem("permission", path)
            return False
        except OSError:
            self.problem("error", path)
            return False
        return True
