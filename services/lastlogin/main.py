"""`chatmail-lastlogin --config FILE`: the last-login dict daemon."""

import sys

from ..core.dictproto import DictServerFactory
from ..core.metrics import add_metrics_endpoint
from ..core.runner import BlockingPool, Daemon, listen_description, run
from ..core.store import open_store
from .dictfront import LastLoginDict


def make_service(config, reactor, args=None) -> Daemon:
    daemon = Daemon(reactor, "lastlogin")
    pool = BlockingPool(reactor, 2, "lastlogin")
    pool.setServiceParent(daemon)
    handler = LastLoginDict(config, open_store(config).accounts, pool)
    daemon.listen(listen_description(args, config.lastlogin.listen),
                  DictServerFactory(handler), "dict")
    add_metrics_endpoint(daemon, config.lastlogin.metrics)
    return daemon


def main(argv=None) -> None:
    sys.exit(run("chatmail-lastlogin", make_service, argv))
