"""Shared fixtures: configs, fresh credentials, an inline pool for unit tests."""

import secrets
import string
import sys
from pathlib import Path

import pytest
from twisted.internet import defer

from chatmail_services.core.config import config_from_dict

DOMAIN = "chat.example.org"

# scripts/ holds the development tools the tests share with README's commands
# (the local relay, test DKIM keys); it is not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


@pytest.fixture
def make_config(tmp_path):
    """Build a validated Config rooted in tmp_path; keyword sections override."""

    def make(**overrides):
        data = {"mail_domain": DOMAIN, "mailboxes_dir": str(tmp_path / "mail"),
                "doveauth": {"nocreate_file": str(tmp_path / "nocreate")}}
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return config_from_dict(data, "test.yaml")

    return make


@pytest.fixture
def new_addr():
    """A fresh address that passes the default admission rules (9 chars)."""

    def make(domain=DOMAIN):
        alphabet = string.ascii_lowercase + string.digits
        return "".join(secrets.choice(alphabet) for _ in range(9)) + "@" + domain

    return make


class InlinePool:
    """Stand-in for runner.BlockingPool in unit tests: runs the call at once on
    the calling thread and returns a fired Deferred (no reactor, no threads)."""

    def run(self, fn, *args, **kwargs):
        return defer.maybeDeferred(fn, *args, **kwargs)


class RecordingPool(InlinePool):
    """An InlinePool that keeps the names of the jobs it ran (`ran`): which
    work took the thread pool and which did not."""

    def __init__(self):
        self.ran = []

    def run(self, fn, *args, **kwargs):
        self.ran.append(getattr(fn, "__name__", repr(fn)))
        return super().run(fn, *args, **kwargs)


class HeldPool:
    """Stand-in for a thread pool whose work waits until the test lets it
    run (`release`), like threads busy hashing or writing: each call is kept
    in `pending` as (Deferred, fn, args)."""

    def __init__(self):
        self.pending = []

    def run(self, fn, *args):
        d = defer.Deferred()
        self.pending.append((d, fn, args))
        return d

    def release(self):
        d, fn, args = self.pending.pop(0)
        try:
            d.callback(fn(*args))
        except Exception as e:
            d.errback(e)


@pytest.fixture
def inline_pool():
    return InlinePool()


@pytest.fixture(params=["deferred", "inline"])
def reads(request, inline_pool):
    """How a daemon's hot-path reads answer, both ways: a Deferred (Redis, or
    a pool) and a plain value (the files store on the reactor thread).
    `reads(role)` is the role's reads."""
    from chatmail_services.core.inline import Pooled

    if request.param == "deferred":
        return lambda role: Pooled(role, inline_pool)
    return lambda role: role


@pytest.fixture(scope="session")
def redis_server():
    """One real redis-server on loopback for the whole session; tests isolate
    themselves by key prefix (and FLUSHDB, see `fresh_redis`)."""
    from .redisserver import RedisServer

    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(redis_server):
    """The session's redis-server, emptied before the test."""
    redis_server.client().flushdb()
    return redis_server
