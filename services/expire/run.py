"""One expiry pass: every account the store lists, then each account's mail.

The accounts come from the store's `Accounts` role, the one list every tool
uses (chatmailctl too), on the files store and on Redis alike; an account's
mail is in its home `<mailboxes_dir>/<addr>`. One account and one mailbox in
memory at a time (and the names in mailboxes_dir, to report strays), account
deletions handed to the store in batches (its notification queue is read
once per batch). In a dry run nothing is removed and the tally says what
would have been.

A directory in `mailboxes_dir` that is no account (no password file on the
files store, no record on Redis) is left untouched: counted as a problem
`not_account`, like a file we may not touch, reported with its path only at
verbose level (paths hold addresses), and the pass goes on. A home that is
missing (no mail delivered on this host yet, or deleted meanwhile) has no
mail to expire.
"""

import os
import time
from typing import Callable, Optional

from ..core.maildir import scan_mailbox
from ..core.store import Accounts, StoreError
from .policy import Limits, account_expired, plan_messages
from .stats import Tally

DELETE_BATCH = 256


class Expiry:
    def __init__(self, config, accounts: Accounts, now: float, remove: bool,
                 verbose: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.accounts = accounts
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
        """Expire every account the store lists, and its mail."""
        started = self.clock()
        homes = self._homes()  # OSError when mailboxes_dir cannot be read
        for addr in self.accounts.iter_accounts():
            homes.discard(addr)
            self.expire_account(addr)
        self._flush_deletions()
        for name in sorted(homes):  # named like an address, but no account
            self._not_account(self.home(name))
        self.tally.seconds = self.clock() - started
        return self.tally

    def home(self, addr: str) -> str:
        return os.path.join(self.config.mailboxes_dir, addr)

    def expire_account(self, addr: str) -> None:
        try:
            last_login = self.accounts.get_last_login(addr)
        except ValueError:  # listed, but no address of ours (files: a foreign name)
            return self._not_account(self.home(addr))
        except PermissionError:
            return self.problem("permission", self.home(addr))
        except (OSError, StoreError):
            return self.problem("error", self.home(addr))
        if last_login is None:
            return  # deleted since it was listed
        if account_expired(last_login, self.limits):
            return self._delete_account(addr)
        self.tally.add_account(last_login)
        self.expire_mailbox(self.home(addr), missing_ok=True)

    def _not_account(self, path: str) -> None:
        self.problem("not_account", path)
        self.tally.not_accounts += 1

    def _homes(self) -> set:
        """The names of the directories in mailboxes_dir named like an address."""
        with os.scandir(self.config.mailboxes_dir) as entries:
            return {e.name for e in entries if "@" in e.name and e.is_dir(follow_symlinks=False)}

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
                self.accounts.delete_accounts(doomed)
            except StoreError as e:
                self.problem("error", str(e))

    def expire_mailbox(self, path: str, missing_ok: bool = False) -> None:
        """Delete one mailbox's old, large and over-quota messages."""
        try:
            box = scan_mailbox(path, self.problem)
        except FileNotFoundError:
            return None if missing_ok else self.problem("vanished", path)
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
