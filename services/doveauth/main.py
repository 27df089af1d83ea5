"""`chatmail-doveauth --config FILE`: the passdb/userdb dict daemon."""

import os

from ..core.inline import reads_runner
from ..core.runner import Daemon, daemon_main
from ..core.store import open_store
from .dictfront import AuthDict
from .policy import AccountPolicy


def make_service(config, reactor, args=None) -> Daemon:
    settings = config.doveauth
    daemon = Daemon(reactor, "doveauth", args)
    # apart, so that logins never wait behind a burst of password hashing
    pool, create_pool = daemon.pool(settings.threads), daemon.pool(
        settings.create_threads or cpus(), "doveauth-create")
    store = open_store(config)
    policy = AccountPolicy(config, store.accounts, registration=store.registration)
    daemon.serve_dict(settings, AuthDict(policy, pool, create_pool, reads_runner(store, pool)))
    return daemon


def cpus() -> int:
    """The CPUs this process may run on: hashing threads run in parallel."""
    return len(os.sched_getaffinity(0)) or 1


main = daemon_main("chatmail-doveauth", make_service)
