"""Fixtures for the metadata daemon: a files store with an account, a fake poster."""

import pytest
from twisted.internet import defer, task

from chatmail_services.core.store.files import open_files
from chatmail_services.metadata.notifier import Notifier
from chatmail_services.metadata.policy import PushPolicy

T0 = 1_700_000_000


class ScriptedPoster:
    """Stand-in for http.HttpPoster in unit tests (mock): records each POSTed token and
    answers with the status `by_token` names for it, else the next scripted one
    (an int, or an Exception to fail with), or leaves the request pending."""

    def __init__(self):
        self.posted = []
        self.script = []
        self.by_token = {}
        self.pending = []

    def post(self, token):
        self.posted.append(token)
        if token in self.by_token:
            return defer.succeed(self.by_token[token])
        if not self.script:
            d = defer.Deferred()
            self.pending.append(d)
            return d
        answer = self.script.pop(0)
        return defer.fail(answer) if isinstance(answer, Exception) else defer.succeed(answer)


@pytest.fixture
def push(make_config, inline_pool, new_addr):
    """A notifier over a files store on a task.Clock, with one account `addr`."""

    class Push:
        def __init__(self, **metadata):
            self.config = make_config(metadata=metadata)
            self.stores = open_files(self.config.mailboxes_dir, self.config.mail_domain)
            self.store = self.stores.push  # the role metadata is handed
            self.addr = new_addr()
            self.stores.accounts.create_account(self.addr, "{SHA512-CRYPT}$6$s$h", T0)
            self.clock = task.Clock()
            self.clock.advance(T0)
            self.policy = PushPolicy(self.config.metadata, self.store)
            self.poster = ScriptedPoster()
            self.notifier = self.make_notifier()

        def make_notifier(self):
            return Notifier(self.policy, self.store, inline_pool, self.poster, self.clock,
                            self.config.metadata, rand=lambda: 1.0)

        def tokens(self):
            return self.policy.tokens(self.addr, self.clock.seconds())

        def queued(self):
            qdir = self.stores.push.queue.path
            return sorted(p.name for p in qdir.iterdir()) if qdir.exists() else []

    return Push
