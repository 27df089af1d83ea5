"""`chatmail-lastlogin --config FILE`: the last-login dict daemon."""

from ..core.runner import Daemon, daemon_main
from ..core.store import open_store
from .dictfront import LastLoginDict


def make_service(config, reactor, args=None) -> Daemon:
    daemon = Daemon(reactor, "lastlogin", args)
    handler = LastLoginDict(config, open_store(config), daemon.pool(2))
    daemon.serve_dict(config.lastlogin, handler)
    return daemon


main = daemon_main("chatmail-lastlogin", make_service)
