"""The embedded files backend: one relay's state under `mailboxes_dir`, in the
reference relay's layout (docs/storage.md). The send rate limit is not on
disk: it lives in the memory of the filtermail process (store/memrate.py)."""

from ..memrate import MemorySendRate
from ..roles import Reads, Store
from .accounts import FilesAccounts
from .layout import Layout
from .push import FilesPushQueue, FilesTransfer
from .queue import QueueDir
from .registration import FilesRegistration

__all__ = ["FilesAccounts", "FilesPushQueue", "FilesTransfer", "Layout", "open_files"]


def open_files(mailboxes_dir, mail_domain: str, owner: str = "vmail") -> Store:
    layout = Layout(mailboxes_dir, mail_domain)
    queue = QueueDir(layout)
    accounts, push = FilesAccounts(layout, queue), FilesPushQueue(layout, queue)
    return Store("files", accounts, push, MemorySendRate(), FilesTransfer(accounts, push),
                 FilesRegistration(mailboxes_dir, owner),
                 # small local files: read inline, cheaper than a thread hand-off
                 reactor_reads=lambda reactor: Reads(accounts, push))
