"""`chatmail-relayd --config FILE [--web]`: every long-running daemon in one process.

For small machines: doveauth, lastlogin, metadata and both filtermail
directions (with `--web` also the web front) share one interpreter and one
reactor, so the interpreter, Twisted and the libraries are in memory once
instead of five times (bench/README.md has the figures). Each daemon is built
by its own `make_service` exactly as its console script builds it, with the
same config keys, listeners, thread pools and /metrics; the separate units
stay the default (systemd/README.md says when to choose which).

This module sits beside the daemon packages, not in one of them: it is the
one place that imports several daemons, and none of them imports it.
"""

import argparse

from twisted.application.service import MultiService

from .core.runner import daemon_main
from .doveauth import main as doveauth
from .filtermail import main as filtermail
from .lastlogin import main as lastlogin
from .metadata import main as metadata

DAEMONS = [
    ("doveauth", doveauth.make_service, {}),
    ("lastlogin", lastlogin.make_service, {}),
    ("metadata", metadata.make_service, {}),
    ("filtermail-outgoing", filtermail.make_service, {"direction": "outgoing"}),
    ("filtermail-incoming", filtermail.make_service, {"direction": "incoming"}),
]


class Host(MultiService):
    """The daemons as children; the process fails when any of them fails."""

    @property
    def exit_status(self) -> int:
        return max((child.exit_status for child in self), default=0)


def make_service(config, reactor, args) -> Host:
    if args.listen:
        raise ValueError("--listen names one endpoint: here each daemon listens where "
                         "its section's `listen` says")
    host = Host()
    host.setName("relayd")
    daemons = list(DAEMONS)
    if args.web:
        from .web import main as web

        daemons.append(("web", web.make_service, {}))
    for _, make, options in daemons:
        # each listens where its config section says (`--listen` is one endpoint)
        make(config, reactor, argparse.Namespace(listen=None, **options)).setServiceParent(host)
    return host


def _add_arguments(parser):
    parser.add_argument("--web", action="store_true",
                        help="also serve the web front (web.listen) in this process")


main = daemon_main("chatmail-relayd", make_service, _add_arguments)
