"""Mailbox trees with known ages: files are back-dated with utime, never waited for.

`tree` is a files store; `any_tree` runs a test over the files store and a
real redis-server (accounts in Redis, mail in `<mailboxes_dir>/<addr>`).
"""

import os
import secrets
import time

import pytest

from chatmail_services.core.days import DAY, day_of
from chatmail_services.core.store import open_store

# Recent, not fixed: Redis expires last-login records by its own clock.
NOW = float(int(time.time()))
HASH = "{SHA512-CRYPT}$6$salt$hash"


class Tree:
    def __init__(self, config):
        self.config = config
        self.root = config.mailboxes_path
        self.store = open_store(config)

    def account(self, addr, login_days_ago=0):
        self.store.accounts.create_account(addr, HASH, NOW)
        self.store.accounts.set_last_login(addr, day_of(NOW - login_days_ago * DAY))
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
    t = Tree(make_config(max_mailbox_size="1M"))
    yield t
    t.store.close()


@pytest.fixture(params=["files", "redis"])
def any_tree(request, make_config):
    storage = "files" if request.param == "files" else request.getfixturevalue("fresh_redis").url
    t = Tree(make_config(max_mailbox_size="1M", storage=storage))
    t.root.mkdir(parents=True, exist_ok=True)  # Dovecot's; Redis creates no homes
    yield t
    t.store.close()
