"""`chatmail-filtermail --config FILE {outgoing,incoming}`: the SMTP content filter.

One process per direction, each listening on `filtermail.<direction>.listen`
for Postfix's filter client and reinjecting into
`filtermail.<direction>.reinject` (see conf/postfix/).
"""

from twisted.logger import Logger

from ..core.memory import Trimmer, limit_arenas
from ..core.runner import Daemon, daemon_main
from .filter import (
    INLINE_MAX, FilterHandler, SendRateLimit, incoming_judge, incoming_recipients,
    outgoing_judge,
)
from .reinject import ReinjectPool
from .server import SMTPFactory
from .subject import minimise_subject

log = Logger()


def _outgoing_parts(config):
    from ..core.store import open_store

    fm = config.filtermail
    limiter = SendRateLimit.from_config(config, open_store(config).send_rate)
    signer = None
    if fm.dkim.sign is not None:
        from .dkimcheck import DkimSigner

        signer = DkimSigner.from_config(config.mail_domain, fm.dkim.sign)
    # the outgoing judge never waits on the store: small messages skip the pool
    return dict(judge=outgoing_judge(config), limiter=limiter, signer=signer,
                rewrite=minimise_subject, inline_max=INLINE_MAX)


def _incoming_parts(config, reactor, pool):
    from ..core.store import open_store

    fm = config.filtermail
    verifier = None
    if fm.dkim.verify:
        from .dkimcheck import DkimVerifier
        from .dnstxt import make_resolver

        lookup = make_resolver(reactor, fm.dkim.nameservers, fm.dkim.dns_timeout)
        verifier = DkimVerifier(lookup, pool)
    else:
        log.warn("DKIM VERIFICATION IS OFF (filtermail.dkim.verify: false): incoming mail "
                 "is accepted without a valid DKIM signature; only do this behind "
                 "another verifier")
    return dict(judge=incoming_judge(config, open_store(config).accounts), verifier=verifier,
                recipients=incoming_recipients(config))


def make_service(config, reactor, args) -> Daemon:
    direction = args.direction
    fm = config.filtermail
    wiring = getattr(fm, direction)
    daemon = Daemon(reactor, f"filtermail-{direction}", args)
    limit_arenas(2)  # pool threads would each keep their own arena of big messages
    pool = daemon.pool(fm.threads)
    reinject = ReinjectPool(reactor, wiring.reinject, config.mail_domain, fm.reinject_timeout)
    daemon.on_stop(reinject.close)
    if direction == "outgoing":
        parts = _outgoing_parts(config)
    else:
        parts = _incoming_parts(config, reactor, pool)
    handler = FilterHandler(direction, pool=pool, reinject=reinject, clock=reactor,
                            after_big=Trimmer(reactor).soon, **parts)
    factory = SMTPFactory(handler, config.mail_domain, config.max_message_size)
    metrics = wiring.metrics or (fm.metrics if direction == "outgoing" else None)
    daemon.serve(wiring.listen, factory, "smtp", metrics)
    return daemon


def _add_arguments(parser):
    parser.add_argument("direction", choices=["outgoing", "incoming"],
                        help="which filter to run (both share one config file)")


main = daemon_main("chatmail-filtermail", make_service, _add_arguments)
