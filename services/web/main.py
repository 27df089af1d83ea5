"""`chatmail-web --config FILE`: the relay's web front (see http.py for the paths)."""

from prometheus_client import Gauge
from twisted.application.internet import TimerService
from twisted.logger import Logger

from ..core.admission import Admission
from ..core.runner import Daemon, daemon_main, listen_description
from ..core.store import open_store
from ..core.store.registration import MODES, open_registration
from .http import Front, make_site
from .pages import Pages
from .policy import NewAccounts, Throttle
from .tls import wrap

MODE_REFRESH = 5.0  # seconds: the index page follows a mode switch this fast
MODE = Gauge("chatmail_web_registration_mode", "1 for the mode the front last read",
             ["mode"])
log = Logger()


class ModeCache:
    """The registration mode as last read from the store, refreshed off the
    reactor thread; the index page reads it without blocking."""

    def __init__(self, registration, pool):
        self.registration, self.pool = registration, pool
        self.mode = "closed"  # until the first read: never show a QR code that fails
        self._failing = False

    def __call__(self) -> str:
        return self.mode

    def refresh(self):
        d = self.pool.run(self.registration.get_mode)
        d.addCallbacks(self._read, self._failed)
        return d

    def _read(self, mode):
        self.mode, self._failing = mode, False
        for name in MODES:
            MODE.labels(name).set(1 if name == mode else 0)

    def _failed(self, failure):
        if not self._failing:  # an outage is logged once, not every few seconds
            log.warn("cannot read the registration mode: {why}", why=failure.getErrorMessage())
        self._failing = True


def make_service(config, reactor, args=None) -> Daemon:
    daemon = Daemon(reactor, "web", args)
    pool = daemon.pool(config.web.threads)
    registration = open_registration(config)
    admission = Admission(config, registration)
    new_accounts = NewAccounts(config, open_store(config), registration, admission)
    modes = ModeCache(registration, pool)
    timer = TimerService(MODE_REFRESH, modes.refresh)
    timer.clock = reactor
    timer.setServiceParent(daemon)
    front = Front(Pages(config), modes, new_accounts, pool,
                  Throttle(config.web.new_per_minute, config.web.new_burst),
                  config.web.behind_proxy)
    daemon.serve(listen_description(args, config.web.listen), wrap(config, make_site(front)),
                 "http", config.web.metrics)
    daemon.on_stop(registration.close)
    return daemon


main = daemon_main("chatmail-web", make_service)
