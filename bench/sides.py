"""The implementations ``bench/compare`` runs side by side: ours, the reference,
and with ``--floor`` a dict server that does no work (bench/floor.py).

A side writes its own configuration into its own directory (mailboxes, UNIX
sockets, logs), starts one daemon at a time and says where it listens. Both
sides use the same free loopback ports scheme and the same notification
sink, so the load tools cannot tell them apart.

Ours runs the entry points from ``--ours-bin`` (the worktree's ``.venv/bin``
by default, or ``/usr/bin`` for the installed package). The reference runs
from a venv that holds the reference ``chatmaild`` (its console scripts read
a ``chatmail.ini`` and take the socket path on the command line); its
notifier's URL is a class constant that points at the public push service,
so it is started through a two-line launcher that points it at the local
sink instead, and ``REQUESTS_CA_BUNDLE`` makes ``requests`` trust that sink.
"""

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from freeport import free_port  # scripts/ (bench/compare puts it on the path)

DOMAIN = "chat.example.org"
KINDS = ("doveauth", "lastlogin", "metadata", "filtermail-outgoing", "filtermail-incoming")
START_TIMEOUT = 30.0


@dataclass
class Daemon:
    kind: str
    proc: subprocess.Popen
    endpoint: str  # UNIX socket path, or HOST:PORT for filtermail

    @property
    def pid(self):
        return self.proc.pid


class Side:
    """What both sides share: ports, directories, start/stop and readiness."""

    name = "?"
    kinds = KINDS  # the daemons it runs
    only = None  # the phases it takes part in (None: all)

    def serves(self, phase) -> bool:
        return self.only is None or phase.__name__ in self.only

    def __init__(self, workdir: Path, sink):
        self.dir = Path(workdir) / self.name
        self.mail = self.dir / "mail"
        self.mail.mkdir(parents=True, exist_ok=True)
        self.sink = sink
        self.ports = {k: free_port() for k in ("fm_out", "fm_in", "reinject_out", "reinject_in")}
        self.daemons = {}

    def socket(self, kind):
        return str(self.dir / f"{kind}.socket")

    def endpoint(self, kind):
        if kind == "filtermail-outgoing":
            return f"127.0.0.1:{self.ports['fm_out']}"
        if kind == "filtermail-incoming":
            return f"127.0.0.1:{self.ports['fm_in']}"
        return self.socket(kind)

    @property
    def accounts_file(self):
        return str(self.dir / "accounts.json")

    def start(self, kind) -> Daemon:
        self.stop(kind)
        endpoint = self.endpoint(kind)
        if "/" in endpoint and os.path.exists(endpoint):
            os.unlink(endpoint)
        log = open(self.dir / f"{kind}.log", "ab")
        proc = subprocess.Popen(self.command(kind), stdout=log, stderr=log,
                                env=self.env(kind), cwd=self.dir)
        log.close()
        daemon = Daemon(kind, proc, endpoint)
        self.daemons[kind] = daemon
        _wait_ready(daemon)
        return daemon

    def stop(self, kind):
        daemon = self.daemons.pop(kind, None)
        if daemon is None:
            return
        daemon.proc.terminate()
        try:
            daemon.proc.wait(10)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait()

    def stop_all(self):
        for kind in list(self.daemons):
            self.stop(kind)

    def env(self, kind):
        return dict(os.environ)

    def command(self, kind):
        raise NotImplementedError


def _wait_ready(daemon):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"{daemon.kind} exited with {daemon.proc.returncode} at start")
        if _listening(daemon.endpoint):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{daemon.kind} did not listen on {daemon.endpoint} in time")


def _listening(endpoint):
    if "/" in endpoint:
        family, address = socket.AF_UNIX, endpoint
        if not os.path.exists(endpoint):
            return False
    else:
        host, port = endpoint.rsplit(":", 1)
        family, address = socket.AF_INET, (host, int(port))
    with socket.socket(family) as s:
        try:
            s.connect(address)
        except OSError:
            return False
    return True


class Ours(Side):
    name = "ours"

    def __init__(self, workdir, sink, bindir: Path, storage: str = "files"):
        super().__init__(workdir, sink)
        self.bindir = Path(bindir)
        self.storage = storage
        self.config = self.dir / "chatmail.yaml"
        self.config.write_text(self._yaml())

    def _yaml(self):
        p, d = self.ports, self.dir
        return f"""mail_domain: {DOMAIN}
mailboxes_dir: {self.mail}
storage: "{self.storage}"
doveauth: {{listen: "unix:{d}/doveauth.socket", nocreate_file: {d}/nocreate,
           max_load_1m: 1000, min_available_memory: 0, min_free_disk_space: 0}}
lastlogin: {{listen: "unix:{d}/lastlogin.socket"}}
metadata: {{listen: "unix:{d}/metadata.socket", notify_url: "{self.sink.url}",
           notify_ca_file: "{self.sink.ca_file}"}}
filtermail:
  outgoing: {{listen: "tcp:{p['fm_out']}:interface=127.0.0.1", reinject: "tcp:127.0.0.1:{p['reinject_out']}"}}
  incoming: {{listen: "tcp:{p['fm_in']}:interface=127.0.0.1", reinject: "tcp:127.0.0.1:{p['reinject_in']}"}}
  dkim: {{verify: false, sign: null}}
  max_user_send_per_minute: 1000000
  max_user_send_burst_size: 1000000
"""

    def command(self, kind):
        config = ["--config", str(self.config), "--log-level", "warn"]
        if kind.startswith("filtermail-"):
            return [str(self.bindir / "chatmail-filtermail"), *config, kind.split("-")[1]]
        return [str(self.bindir / f"chatmail-{kind}"), *config]

    def python(self):
        """The interpreter behind our entry points (for store-level setup)."""
        first = (self.bindir / "chatmail-doveauth").read_text().splitlines()[0]
        return first[2:].strip() if first.startswith("#!") else "python3"


# The reference reads its notification URL from a class attribute; point it
# at the local sink (never at the public service) before its main() runs.
_METADATA_LAUNCHER = (
    "import sys; import chatmaild.notifier as n; n.Notifier.URL = sys.argv.pop(1); "
    "from chatmaild.metadata import main; sys.exit(main())")
_FILTERMAIL_LAUNCHER = "import sys; from chatmaild.filtermail import main; sys.exit(main())"


class Reference(Side):
    name = "reference"

    def __init__(self, workdir, sink, venv: Path):
        super().__init__(workdir, sink)
        self.venv = Path(venv)
        self.filtermail_lib = find_filtermail(self.venv)
        self.ini = self.dir / "chatmail.ini"
        self.ini.write_text(self._ini())

    def _ini(self):
        p = self.ports
        return f"""[params]
mail_domain = {DOMAIN}
mailboxes_dir = {self.mail}
passdb_path = {self.dir}/no-legacy-passdb.sqlite
max_load_1m = 1000
min_available_memory = 0
min_free_disk_space = 0
max_user_send_per_minute = 1000000
passthrough_senders =
passthrough_recipients =
filtermail_smtp_port = {p['fm_out']}
filtermail_smtp_port_incoming = {p['fm_in']}
postfix_reinject_port = {p['reinject_out']}
postfix_reinject_port_incoming = {p['reinject_in']}
turn_socket_path = {self.dir}/no-turn.socket
privacy_postal =
privacy_mail =
privacy_pdo =
privacy_supervisor =
"""

    def command(self, kind):
        py, ini = str(self.venv / "bin" / "python"), str(self.ini)
        if kind == "metadata":
            return [py, "-c", _METADATA_LAUNCHER, self.sink.url, self.socket(kind), ini]
        if kind.startswith("filtermail-"):
            return [py, "-c", _FILTERMAIL_LAUNCHER, ini, kind.split("-")[1]]
        script = {"doveauth": "doveauth", "lastlogin": "lastlogin"}[kind]
        return [str(self.venv / "bin" / script), self.socket(kind), ini]

    def env(self, kind):
        env = dict(os.environ, REQUESTS_CA_BUNDLE=str(self.sink.ca_file))
        if kind.startswith("filtermail-") and self.filtermail_lib:
            env["PYTHONPATH"] = str(self.filtermail_lib)
        return env


def find_filtermail(venv: Path):
    """The ``lib-*`` directory of the venv that holds a chatmaild with filtermail, if any."""
    for lib in sorted(Path(venv).glob("lib-*")):
        if (lib / "chatmaild" / "filtermail.py").exists():
            return lib
    return None


class Floor(Side):
    """bench/floor.py in place of each dict daemon: a server that does no work,
    on Twisted's reactor (``threads``: a blocking thread per connection). Its
    figures are the most any server reaches under the same load tools here."""

    name = "floor"
    kinds = ("doveauth", "lastlogin", "metadata")
    only = {"setup_accounts", "passdb1", "passdb10", "passdb50", "userdb10", "lastlogin1",
            "lastlogin10", "md_set10", "md_lookup10", "md_new10"}

    def __init__(self, workdir, sink, python: str, threads: bool = False):
        super().__init__(workdir, sink)
        self.python, self.threads = python, threads

    def command(self, kind):
        return [self.python, str(Path(__file__).resolve().parent / "floor.py"),
                self.socket(kind)] + (["--threads"] if self.threads else [])
