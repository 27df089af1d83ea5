"""`chatmail-filtermail --config FILE {outgoing,incoming}`: the SMTP content filter.

One process per direction, each listening on `filtermail.<direction>.listen`
for Postfix's filter client and reinjecting into
`filtermail.<direction>.reinject` (see conf/postfix/).
"""

import sys

from twisted.application.service import Service
from twisted.logger import Logger

from ..core.metrics import add_metrics_endpoint
from ..core.runner import BlockingPool, Daemon, run
from .filter import FilterHandler, incoming_judge, outgoing_judge
from .ratelimit import SendRateLimit
from .reinject import ReinjectPool
from .smtpserver import SMTPFactory

log = Logger()


class _ClosePool(Service):
    def __init__(self, pool):
        self.pool = pool

    def stopService(self):
        super().stopService()
        self.pool.close()


def _outgoing_parts(config):
    from ..core.store import open_store

    fm = config.filtermail
    limiter = SendRateLimit.from_config(config, open_store(config).send_rate)
    signer = None
    if fm.dkim.sign is not None:
        from .dkimcheck import DkimSigner

        signer = DkimSigner.from_config(config.mail_domain, fm.dkim.sign)
    return dict(judge=outgoing_judge(config), limiter=limiter, signer=signer)


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
    return dict(judge=incoming_judge(config, open_store(config).accounts), verifier=verifier)


def make_service(config, reactor, args) -> Daemon:
    direction = args.direction
    fm = config.filtermail
    wiring = getattr(fm, direction)
    daemon = Daemon(reactor, f"filtermail-{direction}")
    pool = BlockingPool(reactor, fm.threads, f"filtermail-{direction}")
    pool.setServiceParent(daemon)
    reinject = ReinjectPool(reactor, wiring.reinject, config.mail_domain, fm.reinject_timeout)
    _ClosePool(reinject).setServiceParent(daemon)
    if direction == "outgoing":
        parts = _outgoing_parts(config)
    else:
        parts = _incoming_parts(config, reactor, pool)
    handler = FilterHandler(direction, pool=pool, reinject=reinject, clock=reactor, **parts)
    factory = SMTPFactory(handler, config.mail_domain, config.max_message_size)
    daemon.listen(wiring.listen, factory, "smtp")
    metrics = wiring.metrics or (fm.metrics if direction == "outgoing" else None)
    add_metrics_endpoint(daemon, metrics)
    return daemon


def _add_arguments(parser):
    parser.add_argument("direction", choices=["outgoing", "incoming"],
                        help="which filter to run (both share one config file)")


def main(argv=None) -> None:
    sys.exit(run("chatmail-filtermail", make_service, argv, _add_arguments))
