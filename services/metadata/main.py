"""`chatmail-metadata --config FILE`: IMAP METADATA dict and the push notifier."""

from ..core.inline import store_reads
from ..core.runner import Daemon, daemon_main
from ..core.store import open_store
from .dictfront import MetadataDict
from .http import HttpPoster
from .notifier import Notifier
from .policy import PushPolicy
from .serverkeys import ServerKeys


def make_service(config, reactor, args=None) -> Daemon:
    settings = config.metadata
    daemon = Daemon(reactor, "metadata", args)
    pool = daemon.pool(settings.threads)
    store = open_store(config)
    push = store.push
    policy = PushPolicy(settings, push)
    poster = HttpPoster(reactor, settings.notify_url, settings.notify_ca_file,
                        settings.notify_timeout,
                        daemon.pool(settings.notify_concurrency, "metadata-push"))
    daemon.on_stop(poster.close)  # before the pools stop: no thread waits on the network
    notifier = Notifier(policy, push, pool, poster, reactor, settings)
    notifier.setName("notifier")
    notifier.setServiceParent(daemon)
    server_keys = ServerKeys(config, reactor, pool)
    handler = MetadataDict(config, policy, server_keys, notifier, pool, reactor,
                           store_reads(store, pool, reactor).push)
    daemon.serve_dict(settings, handler)
    return daemon


main = daemon_main("chatmail-metadata", make_service)
