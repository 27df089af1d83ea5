"""`chatmail-lastlogin --config FILE`: the last-login dict daemon."""

from ..core.inline import store_reads
from ..core.runner import Daemon, daemon_main
from ..core.store import open_store
from .dictfront import LastLoginDict


def make_service(config, reactor, args=None) -> Daemon:
    daemon = Daemon(reactor, "lastlogin", args)
    store, pool = open_store(config), daemon.pool(2)
    handler = LastLoginDict(config, store.accounts, pool,
                            store_reads(store, pool, reactor).accounts)
    daemon.serve_dict(config.lastlogin, handler)
    return daemon


main = daemon_main("chatmail-lastlogin", make_service)
