"""The store contract's fixtures: every backend, on one shared state per test.

A `Backend` makes store instances on one state (several instances are several
hosts, or several daemons on one host) and knows how to damage an account in
its own layout; everything else is asserted through the Store interface.
test_store_backends.py (accounts) and test_store_contract.py (push tokens,
the push queue, deletion) both run over `backend`/`store`.
"""

import pytest

from chatmail_services.core.store import Store, open_store

DOMAIN = "chat.example.org"


class FilesBackend:
    name = "files"

    def __init__(self, config):
        self.config = config

    def new(self) -> Store:
        return open_store(self.config)

    def damage(self, addr):
        home = self.config.mailboxes_path / addr
        home.mkdir(parents=True)
        (home / "password").write_bytes(b"")


class RedisBackend:
    name = "redis"

    def __init__(self, config, server):
        self.config = config
        self.server = server

    def new(self) -> Store:
        return open_store(self.config)

    def damage(self, addr):
        key = f"chatmail:{DOMAIN}:account:{addr}"
        self.server.client().hset(key, "enforceE2EEincoming", "1")


@pytest.fixture(params=["files", "redis"])
def backend(request, make_config):
    if request.param == "files":
        return FilesBackend(make_config())
    server = request.getfixturevalue("fresh_redis")
    return RedisBackend(make_config(storage=server.url), server)


@pytest.fixture
def store(backend):
    s = backend.new()
    yield s
    s.close()
