"""`chatmail-metadata --config FILE`: IMAP METADATA dict and the push notifier."""

import sys

from ..core.dictproto import DictServerFactory
from ..core.metrics import add_metrics_endpoint
from ..core.runner import BlockingPool, Daemon, listen_description, run
from ..core.store import open_store
from .dictfront import MetadataDict
from .http import HttpPoster
from .notifier import Notifier
from .policy import PushPolicy
from .serverkeys import ServerKeys


def make_service(config, reactor, args=None) -> Daemon:
    settings = config.metadata
    daemon = Daemon(reactor, "metadata")
    pool = BlockingPool(reactor, settings.threads, "metadata")
    pool.setServiceParent(daemon)
    push = open_store(config).push
    policy = PushPolicy(settings, push)
    poster = HttpPoster(reactor, settings.notify_url, settings.notify_ca_file,
                        settings.notify_timeout, settings.notify_concurrency)
    notifier = Notifier(policy, push, pool, poster, reactor, settings)
    notifier.setName("notifier")
    notifier.setServiceParent(daemon)
    handler = MetadataDict(config, policy, ServerKeys(config, reactor, pool), notifier,
                           pool, reactor)
    daemon.listen(listen_description(args, settings.listen), DictServerFactory(handler), "dict")
    add_metrics_endpoint(daemon, settings.metrics)
    return daemon


def main(argv=None) -> None:
    sys.exit(run("chatmail-metadata", make_service, argv))
