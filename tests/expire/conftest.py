"""Mailbox trees with known ages: files are back-dated with utime, never waited for."""

import os
import secrets

import pytest

from chatmail_services.core.store import day_of
from chatmail_services.core.store.files import FilesStore

NOW = 1_700_000_000.0
DAY = 86400
HASH = "{SHA512-CRYPT}$6$salt$hash"


class Tree:
    def __init__(self, config):
        self.config = config
        self.root = config.mailboxes_path
        self.store = FilesStore(config.mailboxes_dir, config.mail_domain)

    def account(self, addr, login_days_ago=0):
        self.store.create_account(addr, HASH, NOW)
        self.store.set_last_login(addr, day_of(NOW - login_days_ago * DAY))
        return self.root / addr

    def message(self, addr, days_ago, size=1000, folder="cur"):
        d = self.root / addr / folder
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{int(NOW)}.{secrets.token_hex(4)}.host:2,S"
        with open(path, "wb") as f:
            f.truncate(size)  # sparse: real size, no disk blocks
        t = NOW - days_ago * DAY
        os.utime(path, (t, t))
        return path

    def maildirsize(self, addr):
        path = self.root / addr / "maildirsize"
        path.write_text("524288000S\n")
        return path


@pytest.fixture
def tree(make_config):
    return Tree(make_config(max_mailbox_size="1M"))
