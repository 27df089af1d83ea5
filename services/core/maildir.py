"""Reading one mailbox: its maildir messages and other files, one scandir each.

Shared by chatmail-expire (what to delete) and chatmailctl (what an account
holds).

A mailbox is `<mailboxes_dir>/<addr>/`, a Dovecot maildir (`cur`, `new`,
`tmp`) with Maildir++ folders (`.Sent/cur`, ...) beside chatmail's own files
(password, metadata.json, Dovecot's indexes). Files that vanish while we look
(Dovecot moves `new/` to `cur/` and renames on flag changes) are skipped;
anything we may not read is reported through `problem(kind, path)` and
skipped, never raised.
"""

import os
from dataclasses import dataclass, field
from typing import Callable, List, NamedTuple

MAILDIRS = ("cur", "new", "tmp")


class Message(NamedTuple):
    path: str
    mtime: float
    size: int


@dataclass
class Mailbox:
    path: str
    messages: List[Message] = field(default_factory=list)
    other_bytes: int = 0


def scan_mailbox(path: str, problem: Callable[[str, str], None]) -> Mailbox:
    """The mailbox at `path`; raises FileNotFoundError only if it is gone."""
    box = Mailbox(path)
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                _scan_entry(entry, box, problem)
            except FileNotFoundError:
                pass
            except PermissionError:
                problem("permission", entry.path)
    return box


def _scan_entry(entry, box: Mailbox, problem) -> None:
    if entry.name in MAILDIRS:
        _scan_maildir(entry.path, box.messages, problem)
    elif entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
        for sub in MAILDIRS:
            _scan_maildir(os.path.join(entry.path, sub), box.messages, problem)
    elif entry.is_file(follow_symlinks=False):
        box.other_bytes += entry.stat(follow_symlinks=False).st_size


def _scan_maildir(path: str, messages: List[Message], problem) -> None:
    try:
        entries = os.scandir(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    except PermissionError:
        problem("permission", path)
        return
    with entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            except PermissionError:
                problem("permission", entry.path)
                continue
            if entry.is_file(follow_symlinks=False):
                messages.append(Message(entry.path, st.st_mtime, st.st_size))
