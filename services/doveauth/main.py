"""`chatmail-doveauth --config FILE`: the passdb/userdb daemon.

Two front-ends share one policy: the dict socket (`listen`, Dovecot 2.3's dict
passdb) and the HTTP socket (`http_listen`, Dovecot 2.4's Lua passdb).
"""

import sys

from ..core.dictproto import DictServerFactory
from ..core.metrics import add_metrics_endpoint
from ..core.runner import BlockingPool, Daemon, _endpoint, listen_description, run
from ..core.store import open_store
from .dictfront import AuthDict
from .httpfront import auth_site
from .policy import AccountPolicy


def make_service(config, reactor, args=None) -> Daemon:
    daemon = Daemon(reactor, "doveauth")
    pool = BlockingPool(reactor, config.doveauth.threads, "doveauth")
    pool.setServiceParent(daemon)
    create_pool = BlockingPool(reactor, config.doveauth.create_threads, "doveauth-create")
    create_pool.setServiceParent(daemon)
    policy = AccountPolicy(config, open_store(config))
    daemon.listen(listen_description(args, config.doveauth.listen),
                  DictServerFactory(AuthDict(policy, pool, create_pool)), "dict")
    http_listen = getattr(args, "http_listen", None) or config.doveauth.http_listen
    if http_listen:
        daemon.listen(http_listen, auth_site(policy, pool, create_pool, reactor), "http")
    add_metrics_endpoint(daemon, config.doveauth.metrics)
    return daemon


def add_arguments(parser) -> None:
    parser.add_argument("--http-listen", type=_endpoint, default=None, metavar="ENDPOINT",
                        help="serve the HTTP front-end here instead of the config's "
                             "`http_listen`, e.g. systemd:domain=UNIX:index=1")


def main(argv=None) -> None:
    sys.exit(run("chatmail-doveauth", make_service, argv, add_arguments))
