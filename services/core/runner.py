"""One way to start a daemon: arguments, config, logging, endpoints, signals.

Every daemon's console script is `daemon_main(name, make_service)`, which
calls `run(name, make_service)`: it reads `--config FILE`
(a bad file exits 2 with one line naming file, key and problem), logs to
stderr for journald (no timestamps: journald adds them; no secrets: callers
log addresses only at debug level and never passwords or tokens), builds the
daemon's MultiService and runs the reactor until SIGTERM or SIGINT.

A `listen` that fails (socket path missing, port taken) stops the daemon with
exit status 1 instead of leaving a process that serves nothing.
"""

import argparse
import re
import sys

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, Logger,
    formatEvent, globalLogBeginner,
)

from .config import _check_endpoint
from .configschema import DEFAULT_BACKLOG
from .dictproto import DictServerFactory
from .entry import EXIT_USAGE, add_config_argument, console, load_or_report
from .logsafe import one_line
from .threads import BlockingPool

log = Logger()


def with_backlog(description: str, backlog: int) -> str:
    """The endpoint string with `backlog=` added where Twisted takes it (TCP, UNIX
    and TLS ports) unless it names one; a systemd socket's is its unit's."""
    kind = description.split(":", 1)[0]
    if kind not in BACKLOG_KINDS or re.search(r"(^|:)backlog=", description):
        return description
    return f"{description}:backlog={backlog}"


BACKLOG_KINDS = ("tcp", "tcp6", "unix", "ssl")


class ListeningService(Service):
    """Listen on a Twisted endpoint string; a failure to listen is fatal."""

    def __init__(self, reactor, description: str, factory, on_fatal, backlog=None):
        self.reactor = reactor
        self.description = description
        self.factory = factory
        self.on_fatal = on_fatal
        self.backlog = backlog
        self.port = None

    def startService(self):
        super().startService()
        # its own, else its daemon's (the config's `listen_backlog`, see run())
        backlog = self.backlog or getattr(self.parent, "backlog", DEFAULT_BACKLOG)
        endpoint = serverFromString(self.reactor, with_backlog(self.description, backlog))
        d = endpoint.listen(self.factory)
        d.addCallbacks(self._listening, self._failed)

    def _listening(self, port):
        self.port = port
        log.info("{name} listening on {where}", name=self.name, where=self.description)

    def _failed(self, failure):
        log.critical("{name}: cannot listen on {where}: {why}", name=self.name,
                     where=self.description, why=failure.getErrorMessage())
        self.on_fatal()

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            if self.description.startswith("systemd:"):
                # systemd.socket(5): a daemon must not unlink a socket it was
                # given, and Twisted's stopListening() would. Stop accepting
                # only: pending connections wait in the backlog for our successor.
                port.stopReading()
                return defer.succeed(None)
            return port.stopListening()
        return defer.succeed(None)


class _OnStop(Service):
    def __init__(self, fn):
        self.fn = fn

    def stopService(self):
        super().stopService()
        self.fn()


class Daemon(MultiService):
    """The root service of one daemon: its pools, listeners and metrics.

    A daemon's `make_service` is wiring only: `pool()` for blocking work,
    `serve()` (or `serve_dict()`) for its listener and its `/metrics`, and
    `on_stop()` for what must be closed. It remembers how the process exits.
    `backlog` is every listener's (`listen_backlog`, set by `run()`).
    """

    backlog = DEFAULT_BACKLOG

    def __init__(self, reactor, name: str, args=None):
        super().__init__()
        self.reactor = reactor
        self.args = args
        self.setName(name)
        self.exit_status = 0

    def pool(self, size: int, name: str = "", nice: int = 0,
             idle: bool = False) -> "BlockingPool":
        """A thread pool started and stopped with the daemon."""
        pool = BlockingPool(self.reactor, size, name or self.name, nice, idle)
        pool.setServiceParent(self)
        return pool

    def on_stop(self, fn) -> None:
        """Call `fn()` when the daemon stops (e.g. close client connections)."""
        _OnStop(fn).setServiceParent(self)

    def serve(self, description: str, factory, name: str, metrics=None) -> "ListeningService":
        """Listen with `factory`, and serve /metrics on `metrics` when it is set."""
        svc = self.listen(description, factory, name)
        if metrics:
            from .website import metrics_site  # twisted.web only when it serves

            self.listen(metrics, metrics_site(), "metrics")
        return svc

    def serve_dict(self, section, handler) -> "ListeningService":
        """A Dovecot dict daemon: `handler` on `--listen` or `section.listen`,
        /metrics on `section.metrics`."""
        where = listen_description(self.args, section.listen)
        return self.serve(where, DictServerFactory(handler), "dict", section.metrics)

    def fatal(self) -> None:
        self.exit_status = 1
        if self.reactor.running:
            self.reactor.stop()

    def listen(self, description: str, factory, name: str) -> ListeningService:
        svc = ListeningService(self.reactor, description, factory, self.fatal)
        svc.setName(name)
        svc.setServiceParent(self)
        return svc


def emitter(stream):
    """The observer that writes one event to `stream`: `<level>: <message>` on
    one line (escaped: no client text can start a line of its own,
    core/logsafe.py), then an indented traceback if the event has one."""

    def emit(event):
        lines = [f"{event['log_level'].name}: {one_line(formatEvent(event))}"]
        failure = event.get("log_failure")
        if failure is not None:
            lines += ["    " + one_line(line) for line in failure.getTraceback().splitlines()]
        stream.write("".join(line + "\n" for line in lines))
        stream.flush()

    return emit


def start_logging(level: LogLevel, stream=None) -> None:
    emit = emitter(stream or sys.stderr)
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(emit, [predicate])],
                                     redirectStandardIO=False)


def _endpoint(value: str) -> str:
    try:
        _check_endpoint(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def listen_description(args, configured: str) -> str:
    """Where a daemon listens: `--listen` if given, else its section's `listen`."""
    return getattr(args, "listen", None) or configured


def parse_args(name: str, argv, add_arguments=None):
    parser = argparse.ArgumentParser(prog=name)
    add_config_argument(parser)
    parser.add_argument("--listen", type=_endpoint, default=None, metavar="ENDPOINT",
                        help="listen here instead of the config's `listen`, e.g. "
                             "systemd:domain=UNIX:index=0 under a systemd .socket unit")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warn", "error"])
    if add_arguments:
        add_arguments(parser)
    return parser.parse_args(argv)


def run(name: str, make_service, argv=None, add_arguments=None) -> int:
    """Run a daemon in the foreground; returns its exit status."""
    args = parse_args(name, argv, add_arguments)
    config = load_or_report(name, args.config)
    if config is None:
        return EXIT_USAGE
    start_logging(LogLevel.levelWithName(args.log_level))
    for warning in config.warnings:
        log.warn("{path}: {warning}", path=config.path, warning=warning)
    from twisted.internet import reactor

    try:
        daemon = make_service(config, reactor, args)
    except Exception as e:  # e.g. an unreadable key file: one line, no traceback
        sys.stderr.write(f"{name}: {e}\n")
        return 1
    daemon.backlog = config.listen_backlog
    reactor.callWhenRunning(daemon.startService)
    reactor.addSystemEventTrigger("before", "shutdown", daemon.stopService)
    reactor.run()
    return daemon.exit_status


def daemon_main(name: str, make_service, add_arguments=None):
    """The console script `main(argv=None)` of a daemon: `run()`, then exit."""
    return console(lambda argv: run(name, make_service, argv, add_arguments))
