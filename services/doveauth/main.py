"""`chatmail-doveauth --config FILE`: the passdb/userdb daemon.

Two front-ends share one policy: the dict socket (`listen`, Dovecot 2.3's dict
passdb) and the HTTP socket (`http_listen` or `--http-listen`, Dovecot 2.4's
Lua passdb).
"""

import os

from ..core.inline import store_reads
from ..core.runner import Daemon, _endpoint, daemon_main
from ..core.store import open_store
from .dictfront import AuthDict
from .policy import AccountPolicy

# The hashing threads' priority, below the daemon's: the lowest there is,
# nice 19 and SCHED_IDLE. With idle CPUs they hash at full speed; when logins
# keep the CPUs busy, account creations slow down (measured in
# bench/README.md) rather than them.
# They check admission and hash; the new account is written in `pool`
# (doveauth/policy.py, `prepare` and `store_new`).
CREATE_NICE = 19


def make_service(config, reactor, args=None) -> Daemon:
    settings = config.doveauth
    daemon = Daemon(reactor, "doveauth", args)
    # apart and at a lower CPU priority, so that logins of existing accounts
    # neither queue nor starve behind a burst of password hashing
    pool, create_pool = daemon.pool(settings.threads), daemon.pool(
        settings.create_threads or cpus(), "doveauth-create", nice=CREATE_NICE, idle=True)
    store = open_store(config)
    policy = AccountPolicy(config, store.accounts, registration=store.registration,
                           reads=store_reads(store, pool, reactor).accounts)
    daemon.serve_dict(settings, AuthDict(policy, pool, create_pool))
    http_listen = getattr(args, "http_listen", None) or settings.http_listen
    if http_listen:  # Dovecot 2.4; twisted.web is loaded only then
        from .httpfront import auth_site

        daemon.listen(http_listen, auth_site(policy, pool, create_pool, reactor), "http")
    return daemon


def cpus() -> int:
    """The CPUs this process may run on: hashing threads run in parallel."""
    return len(os.sched_getaffinity(0)) or 1


def add_arguments(parser) -> None:
    parser.add_argument("--http-listen", type=_endpoint, default=None, metavar="ENDPOINT",
                        help="serve the HTTP front-end (Dovecot 2.4) here instead of the "
                             "config's `http_listen`, e.g. systemd:domain=UNIX:index=1")


main = daemon_main("chatmail-doveauth", make_service, add_arguments)
