"""One way to start a daemon: arguments, config, logging, endpoints, signals.

Every console script is `run(name, make_service)`: it reads `--config FILE`
(a bad file exits 2 with one line naming file, key and problem), logs to
stderr for journald (no timestamps: journald adds them; no secrets: callers
log addresses only at debug level and never passwords or tokens), builds the
daemon's MultiService and runs the reactor until SIGTERM or SIGINT.

A `listen` that fails (socket path missing, port taken) stops the daemon with
exit status 1 instead of leaving a process that serves nothing.
"""

import argparse
import sys

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, Logger,
    eventAsText, globalLogBeginner,
)
from twisted.python.threadpool import ThreadPool
from twisted.internet.threads import deferToThreadPool

from .config import ConfigError, _check_endpoint, load_config

log = Logger()


class ListeningService(Service):
    """Listen on a Twisted endpoint string; a failure to listen is fatal."""

    def __init__(self, reactor, description: str, factory, on_fatal):
        self.reactor = reactor
        self.description = description
        self.factory = factory
        self.on_fatal = on_fatal
        self.port = None

    def startService(self):
        super().startService()
        endpoint = serverFromString(self.reactor, self.description)
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


class BlockingPool(Service):
    """A small thread pool for blocking work (disk, hashing, sync clients)."""

    def __init__(self, reactor, size: int, name: str):
        self.reactor = reactor
        self.pool = ThreadPool(minthreads=1, maxthreads=size, name=name)

    def startService(self):
        super().startService()
        self.pool.start()

    def stopService(self):
        super().stopService()
        self.pool.stop()

    def run(self, fn, *args, **kwargs) -> defer.Deferred:
        return deferToThreadPool(self.reactor, self.pool, fn, *args, **kwargs)


class Daemon(MultiService):
    """The root service of one daemon; remembers how it should exit."""

    def __init__(self, reactor, name: str):
        super().__init__()
        self.reactor = reactor
        self.setName(name)
        self.exit_status = 0

    def fatal(self) -> None:
        self.exit_status = 1
        if self.reactor.running:
            self.reactor.stop()

    def listen(self, description: str, factory, name: str) -> ListeningService:
        svc = ListeningService(self.reactor, description, factory, self.fatal)
        svc.setName(name)
        svc.setServiceParent(self)
        return svc


def start_logging(level: LogLevel, stream=None) -> None:
    stream = stream or sys.stderr

    def emit(event):
        text = eventAsText(event, includeTraceback=True, includeTimestamp=False,
                           includeSystem=False)
        stream.write(f"{event['log_level'].name}: {text}\n")
        stream.flush()

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
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="chatmail.yaml (or a legacy chatmail.ini)")
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
    try:
        config = load_config(args.config)
    except ConfigError as e:
        sys.stderr.write(f"{name}: {e}\n")
        return 2
    start_logging(LogLevel.levelWithName(args.log_level))
    for warning in config.warnings:
        log.warn("{path}: {warning}", path=config.path, warning=warning)
    from twisted.internet import reactor

    try:
        daemon = make_service(config, reactor, args)
    except Exception as e:  # e.g. an unreadable key file: one line, no traceback
        sys.stderr.write(f"{name}: {e}\n")
        return 1
    reactor.callWhenRunning(daemon.startService)
    reactor.addSystemEventTrigger("before", "shutdown", daemon.stopService)
    reactor.run()
    return daemon.exit_status
