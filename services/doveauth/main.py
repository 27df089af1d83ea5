"""`chatmail-doveauth --config FILE`: the passdb/userdb dict daemon."""

import sys

from ..core.dictproto import DictServerFactory
from ..core.metrics import add_metrics_endpoint
from ..core.runner import BlockingPool, Daemon, listen_description, run
from ..core.store import open_store
from .dictfront import AuthDict
from .policy import AccountPolicy


def make_service(config, reactor, args=None) -> Daemon:
    daemon = Daemon(reactor, "doveauth")
    pool = BlockingPool(reactor, config.doveauth.threads, "doveauth")
    pool.setServiceParent(daemon)
    create_pool = BlockingPool(reactor, config.doveauth.create_threads, "doveauth-create")
    create_pool.setServiceParent(daemon)
    policy = AccountPolicy(config, open_store(config).accounts)
    front = AuthDict(policy, pool, create_pool)
    daemon.listen(listen_description(args, config.doveauth.listen),
                  DictServerFactory(front), "dict")
    add_metrics_endpoint(daemon, config.doveauth.metrics)
    return daemon


def main(argv=None) -> None:
    sys.exit(run("chatmail-doveauth", make_service, argv))
