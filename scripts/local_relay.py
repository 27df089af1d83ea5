"""A complete chatmail relay on loopback, wired by `chatmailctl setup` like a server.

Used by README's first command (`scripts/relay-up`) and by the integration
tests, so what operators get from `chatmailctl setup` is what is tested:

 1. a stock Debian /etc/dovecot and /etc/postfix under <dir>/etc, built from
    the installed packages (stock_tree.py), and <dir>/etc/chatmail/chatmail.yaml;
 2. the loopback instance's own places (queue, data and log of Postfix);
 3. `chatmailctl setup --root <dir>` with this checkout's conf/ and systemd/;
 4. then only what a loopback test relay needs differs from a server:
        /run/chatmail/            -> <dir>/run/
        /etc/dovecot/, /etc/postfix/, /etc/chatmail/, /var/spool/postfix
                                  -> the same under <dir>
        /usr/bin/chatmail-*       -> this venv's console scripts
    in the files setup wrote, and conf.d/99-local-relay.conf for Dovecot's
    base_dir, log, test certificate and loopback ports (local_postfix.py
    does the same for Postfix);

then starts the daemons (as user vmail, like the systemd units) and Debian's
Dovecot from that tree. No system config is touched. Not installed with the
package: a development and test tool.

`chatmailctl setup` picks the snippet set by the installed Dovecot
(setupcompose.dovecot_release): conf/dovecot/ for 2.3 (Debian 12),
conf/dovecot24/ for 2.4 (Debian 13); 99-local-relay.conf follows it too.

The daemons import this checkout's code from a copy in <dir>/code (through
PYTHONPATH), so they run from any checkout location, even one that vmail
cannot enter, such as a clone in /root.
"""

import argparse
import atexit
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import resource

import yaml

import stock_tree
from freeport import free_port  # noqa: F401 (also for the tests)

REPO = Path(__file__).resolve().parent.parent
# resolved: .venv is a link to a venv that vmail can enter (scripts/bootstrap)
BIN = Path(sys.executable).parent.resolve()
_TEMPLATES = {}  # setup-relevant config -> a tree `chatmailctl setup` composed




def wait_for(check, what: str, timeout: float = 20.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{what}: not ready after {timeout}s")


def dovecot_version() -> tuple:
    """(major, minor) of the installed Dovecot, e.g. (2, 3) or (2, 4)."""
    out = subprocess.run(["dovecot", "--version"], capture_output=True, text=True,
                         check=True).stdout
    match = re.match(r"(\d+)\.(\d+)", out)
    if not match:
        raise RuntimeError(f"dovecot --version: cannot read {out.strip()!r}")
    return int(match[1]), int(match[2])


def copy_readable(source: Path, target: Path) -> None:
    """Copy a folder of this checkout where the vmail daemons can read it."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in [target.parent, target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def copy_code(dest: Path) -> None:
    """Copy services/ to dest/chatmail_services, readable by everyone."""
    copy_readable(REPO / "services", dest / "chatmail_services")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


class LocalRelay:
    def __init__(self, base: Path, mail_domain: str = "chat.example.org",
                 imap_port: int = 0, overrides=None, postfix=None, outside=None,
                 web=False, dovecot_extra: str = "", one_process=False):
        from local_postfix import PostfixPart

        self.base = Path(base)
        self.mail_domain = mail_domain
        self.imap_port = imap_port or free_port()
        self.imaps_port = free_port()
        self.lmtp_port = free_port()
        self.overrides = overrides or {}
        self.dovecot_extra = dovecot_extra
        self.run_dir = self.base / "run"
        self.mailboxes = self.base / "mail" / mail_domain
        self.nocreate = self.base / "chatmail-nocreate"
        self.config_path = self.base / "etc" / "chatmail" / "chatmail.yaml"
        self.dovecot_dir = self.base / "etc" / "dovecot"
        self.dovecot_log = self.base / "dovecot.log"
        self.code_dir = self.base / "code"
        self.dovecot_version = dovecot_version()
        self.procs = {}
        self.vmail = pwd.getpwnam("vmail")
        # "before" or "after": Postfix with filtermail wired in that mode is
        # started; None: Postfix is only set up (Dovecot's sockets live in its queue)
        self.mode = postfix
        self.mail = PostfixPart(self, postfix or "before", free_port, outside)
        self.setup_output = ""
        # chatmail-relayd instead of one process per daemon
        self.one_process = one_process
        # chatmail-web over HTTPS on loopback (local_web.py)
        self.web = None
        if web:
            from local_web import WebPart

            self.web = WebPart(self, free_port)

    # -- rendering ---------------------------------------------------------
    def server_paths(self) -> dict:
        return {"/run/chatmail/": f"{self.run_dir}/",
                "/etc/dovecot/": f"{self.dovecot_dir}/",
                "/etc/postfix/": f"{self.mail.etc}/",
                "/etc/chatmail/": f"{self.config_path.parent}/",
                "/var/spool/postfix": str(self.mail.spool),
                # Dovecot runs chatmail-expire (the quota warning) with an
                # environment of its own: the readable code copy goes with it.
                "/usr/bin/chatmail-": f"/usr/bin/env PYTHONPATH={self.code_dir} {BIN}/chatmail-"}

    def localize(self, text: str) -> str:
        for server, local in self.server_paths().items():
            text = text.replace(server, local)
        return text

    def config_data(self) -> dict:
        data = {
            "mail_domain": self.mail_domain,
            "mailboxes_dir": str(self.mailboxes),
            "doveauth": {"listen": f"unix:{self.run_dir}/doveauth.socket:mode=660",
                         "http_listen": f"unix:{self.run_dir}/doveauth-http.socket:mode=660",
                         "nocreate_file": str(self.nocreate),
                         # A loopback relay shares its machine with builds and
                         # test runs: the load guard would refuse accounts.
                         "max_load_1m": 1000},
            "lastlogin": {"listen": f"unix:{self.run_dir}/lastlogin.socket:mode=660"},
            "metadata": {"listen": f"unix:{self.run_dir}/metadata.socket:mode=660"},
            "filtermail": self.mail.filtermail_config(),
        }
        if self.web:
            data["web"] = self.web.web_config()
        for section, values in self.overrides.items():
            if isinstance(values, dict):
                data.setdefault(section, {}).update(values)
            else:
                data[section] = values
        return data

    def write_config(self) -> None:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config_data(), sort_keys=False))
        self.config_path.chmod(0o644)

    def render(self) -> None:
        for d in (self.base, self.run_dir, self.mailboxes.parent, self.mailboxes):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, self.vmail.pw_uid, self.vmail.pw_gid)
        self.base.chmod(0o755)
        copy_code(self.code_dir)
        for old in ("etc/dovecot", "etc/postfix", "var/lib/chatmail-services"):
            shutil.rmtree(self.base / old, ignore_errors=True)
        self.copy_setup_result(self.setup_template())
        self.write_config()
        self.mail.prepare_site()
        # Debian's 10-ssl.conf names /etc/dovecot/private/dovecot.pem (the test certificate)
        for rel in self.setup_files() + ["etc/dovecot/conf.d/10-ssl.conf"]:
            if rel.startswith(("etc/dovecot/", "etc/postfix/")):
                path = self.base / rel
                path.write_text(self.localize(path.read_text()))
        for ext in ("pem", "key"):
            shutil.copy(self.mail.dir / f"{'cert' if ext == 'pem' else 'key'}.pem",
                        self.dovecot_dir / "private" / f"dovecot.{ext}")
        (self.dovecot_dir / "conf.d" / "99-local-relay.conf").write_text(self.dovecot_local_conf())
        self.mail.after_setup()
        if self.web:
            self.web.render()

    def compose(self) -> None:
        """A fresh stock tree, the instance's own places, then `chatmailctl setup` on it."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        stock_tree.build(self.base, f"mx.{self.mail_domain}")
        (self.base / "etc").chmod(0o755)
        self.write_config()
        self.mail.prepare_site()
        self.run_setup()

    def setup_template(self) -> Path:
        """setup's result for this config, composed once per process (setup takes seconds:
        `postfix check`, key generation) and copied into every relay with the same values."""
        data = self.config_data()
        key = json.dumps([self.mail.mode, data["mail_domain"], data.get("max_message_size"),
                          data.get("max_mailbox_size"), data.get("setup"),
                          data["filtermail"].get("dkim", {}).get("sign", "default")],
                         sort_keys=True, default=str)
        if key not in _TEMPLATES:
            template = Path(tempfile.mkdtemp(prefix="chatmail-setup-template-", dir="/tmp"))
            atexit.register(shutil.rmtree, template, True)
            LocalRelay(template, self.mail_domain, overrides=self.overrides,
                       postfix=self.mail.mode).compose()
            _TEMPLATES[key] = template
        return _TEMPLATES[key]

    def copy_setup_result(self, template: Path) -> None:
        for rel in ("etc", "var/lib/chatmail-services"):
            shutil.copytree(template / rel, self.base / rel, symlinks=True, dirs_exist_ok=True,
                            copy_function=_copy_owned)
        self.mail.dir.mkdir(parents=True, exist_ok=True)
        for name in ("cert.pem", "key.pem"):
            shutil.copy2(template / "postfix" / name, self.mail.dir / name)
        self.setup_output = (template / "setup.log").read_text()
        (self.base / "setup.log").write_text(self.setup_output)

    def run_setup(self) -> None:
        proc = subprocess.run(
            [str(BIN / "chatmailctl"), "--config", str(self.config_path), "setup",
             "--root", str(self.base), "--sources", str(REPO), "--postfix-filter", self.mail.mode],
            capture_output=True, text=True, timeout=300)
        self.setup_output = proc.stdout
        (self.base / "setup.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"chatmailctl setup failed: {proc.stderr.strip()}")

    def setup_files(self) -> list:
        from chatmail_services.ctl.setupstate import Tree

        return [rel for rel, how in Tree(self.base).manifest().items() if how != "directory"]

    def dovecot_local_conf(self) -> str:
        d = self.base / "dovecot"
        # 2.4 renamed disable_plaintext_auth and takes no listener `address`
        # (the global `listen` covers it)
        if self.dovecot_version >= (2, 4):
            cleartext, address = "auth_allow_cleartext = yes", ""
        else:
            cleartext, address = "disable_plaintext_auth = no", "    address = 127.0.0.1\n"
        return f"""# local relay: what differs from a server wired by chatmailctl setup
base_dir = {d}/base
state_dir = {d}/state
log_path = {self.dovecot_log}
listen = 127.0.0.1
# plain IMAP on loopback for the tests' imaplib, next to imaps
{cleartext}
auth_failure_delay = 0
service imap-login {{
  inet_listener imap {{
{address}    port = {self.imap_port}
  }}
  inet_listener imaps {{
{address}    port = {self.imaps_port}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
{address}    port = {self.lmtp_port}
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{self.dovecot_extra}
"""

    def apply_sysctl(self) -> None:
        """The sysctl.d file setup wrote, applied where it raises this kernel's limits
        (as `sysctl --system` does at boot on a server; never lowers a value)."""
        path = self.base / "etc/sysctl.d/90-chatmail.conf"
        for line in (path.read_text().splitlines() if path.exists() else []):
            if line.strip() and not line.startswith("#"):
                key, value = (s.strip() for s in line.split("="))
                current = Path("/proc/sys", *key.split(".")).read_text().strip()
                if int(current) < int(value):
                    subprocess.run(["sysctl", "-w", f"{key}={value}"], check=True,
                                   capture_output=True)

    # -- processes ---------------------------------------------------------
    def sockets(self, name: str) -> list:
        extra = ["doveauth-http"] if name == "doveauth" else []
        return [self.run_dir / f"{s}.socket" for s in [name, *extra]]

    def start_daemon(self, name: str, *extra):
        for path in self.sockets(name):
            path.unlink(missing_ok=True)  # left by a killed daemon
        log = open(self.base / f"{name}.log", "ab")
        cmd = [str(BIN / f"chatmail-{name}"), "--config", str(self.config_path),
               "--log-level", "debug", *extra]
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, user="vmail", group="vmail",
                                extra_groups=[], cwd=self.base, env=self.daemon_env())
        self.procs[name] = proc
        for path in self.sockets(name):
            wait_for(path.exists, f"chatmail-{name}", proc=proc)
        return proc

    def daemon_env(self, env=None) -> dict:
        """The environment of a process run as vmail: the readable copy of the code first."""
        return dict(os.environ if env is None else env, PYTHONPATH=str(self.code_dir))

    def start_process(self, name: str, cmd, user=None, env=None):
        log = open(self.base / f"{name}.log", "ab")
        kwargs = dict(user=user, group=user, extra_groups=[]) if user else {}
        if user:
            env = self.daemon_env(env)
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=self.base, env=env, **kwargs)
        self.procs[name] = proc
        return proc

    def wait_port(self, port: int, what: str, proc=None, host: str = "127.0.0.1"):
        wait_for(lambda: port_open(port, host), what, proc=proc)

    def restart_daemon(self, name: str, **overrides):
        """Stop one daemon, rewrite chatmail.yaml with `overrides`, start it again."""
        proc = self.procs.pop(name)
        proc.terminate()
        proc.wait(timeout=10)
        self.overrides = overrides
        self.write_config()
        return self.start_daemon(name)

    def start_dovecot(self):
        for sub in ("base", "state"):
            (self.base / "dovecot" / sub).mkdir(parents=True, exist_ok=True)
        conf = str(self.dovecot_dir / "dovecot.conf")
        proc = subprocess.Popen(["dovecot", "-F", "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=open(self.base / "dovecot.stderr", "ab"),
                                preexec_fn=_raise_fd_limit)
        self.procs["dovecot"] = proc
        wait_for(lambda: port_open(self.imap_port), "dovecot", proc=proc)
        wait_for(lambda: port_open(self.lmtp_port), "dovecot lmtp", proc=proc)
        return proc

    def start_notify_sink(self, port: int = 0):
        """Point the metadata daemon at a local HTTPS notification sink
        (scripts/notify_sink.py, own test CA); it logs each POST to notifications.log."""
        port = port or free_port()
        sink_dir = self.base / "notify-sink"
        self.notifications_log = self.base / "notifications.log"
        sink_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(REPO / "scripts" / "notify_sink.py"), "--port", str(port),
               "--dir", str(sink_dir), "--log", str(self.notifications_log)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                stderr=open(self.base / "notify-sink.stderr", "ab"))
        self.procs["notify-sink"] = proc
        wait_for(lambda: port_open(port), "notify sink", proc=proc)
        sink_dir.chmod(0o755)  # the metadata daemon (user vmail) reads ca.pem
        (sink_dir / "ca.pem").chmod(0o644)
        self.overrides.setdefault("metadata", {}).update(
            notify_url=f"https://localhost:{port}/notify",
            notify_ca_file=str(sink_dir / "ca.pem"))
        if self.config_path.exists():
            self.write_config()
        return proc

    def doveadm(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run(["doveadm", "-c", str(self.dovecot_dir / "dovecot.conf"), *args],
                              capture_output=True, text=True, timeout=30)

    def start_relayd(self):
        """chatmail-relayd: the dict daemons and both filters in one process."""
        for name in ("doveauth", "lastlogin", "metadata"):
            (self.run_dir / f"{name}.socket").unlink(missing_ok=True)
        cmd = [str(BIN / "chatmail-relayd"), "--config", str(self.config_path),
               "--log-level", "debug"]
        proc = self.start_process("relayd", cmd, user="vmail")
        for name in ("doveauth", "lastlogin", "metadata"):
            wait_for((self.run_dir / f"{name}.socket").exists, f"relayd {name}", proc=proc)
        for default in (10080, 10081):  # the filters' ports (10025/6 are Postfix's)
            self.wait_port(self.mail.filter_ports[default], "relayd filtermail", proc)
        return proc

    def start(self) -> "LocalRelay":
        self.render()
        if self.one_process:
            self.start_relayd()
        else:
            self.start_daemon("doveauth")
            self.start_daemon("lastlogin")
            self.start_daemon("metadata")
        if self.web:
            self.web.start()
        if self.mode:
            self.mail.start_dns()
            self.mail.start_mta_sts_resolver()
        if self.mode and not self.one_process:
            self.mail.start_filtermail("outgoing")
            self.mail.start_filtermail("incoming")
        self.start_dovecot()
        if self.mode:
            self.mail.start_postfix()
        return self

    def stop(self) -> None:
        if self.mode:
            self.mail.stop()
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()


def _copy_owned(src, dst):
    shutil.copy2(src, dst)
    st = os.stat(src)
    os.chown(dst, st.st_uid, st.st_gid)


def _raise_fd_limit():
    """Dovecot holds two descriptors per proxied session; a shell's 1024 is too few."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp/chatmail-relay", type=Path)
    parser.add_argument("--domain", default="chat.example.org")
    parser.add_argument("--imap-port", type=int, default=1143)
    parser.add_argument("--fresh", action="store_true", help="remove --dir first")
    parser.add_argument("--postfix", choices=["before", "after", "none"], default="before",
                        help="Postfix with filtermail before-queue (default), after-queue, or none")
    parser.add_argument("--no-web", action="store_true", help="without the web front")
    args = parser.parse_args(argv)
    if args.fresh and args.dir.exists():
        shutil.rmtree(args.dir)
    relay = LocalRelay(args.dir, args.domain, args.imap_port,
                       postfix=None if args.postfix == "none" else args.postfix,
                       web=not args.no_web)
    try:
        relay.start_notify_sink()
        relay.start()
    except RuntimeError as e:
        relay.stop()
        sys.stderr.write(f"local relay failed to start: {e}; logs in {args.dir}\n")
        return 1
    sys.stdout.write(f"""chatmail local relay is up (state and logs in {args.dir}).
  IMAP:  127.0.0.1:{relay.imap_port} (plain text, loopback only), \
imaps {relay.imaps_port} (self-signed)
  Log in with any new address to create it, e.g.:
    python3 -c "import imaplib; c=imaplib.IMAP4('127.0.0.1', {relay.imap_port}); \\
print(c.login('abcdefghi@{args.domain}', 'a-secret-password'))"
  Accounts:  doveadm -c {relay.dovecot_dir}/dovecot.conf user '*'
  LMTP:  127.0.0.1:{relay.lmtp_port} (local delivery, e.g. with Python's smtplib.LMTP)
  Push notifications (a local HTTPS sink stands in for notifications.delta.chat):
    tail -f {relay.notifications_log}
""")
    if relay.mode:
        ports = relay.mail.ports
        sys.stdout.write(f"""  SMTP:  submission 127.0.0.1:{ports['submission']} (STARTTLS, self-signed), \
submissions {ports['submissions']}, port 25 as {ports['smtp']}
  Postfix ({args.postfix}-queue filters): postfix -c {relay.mail.etc} ..., \
log {relay.mail.dir}/postfix.log
""")
    if relay.web:
        sys.stdout.write(relay.web.banner())
    sys.stdout.write(f"  Config (for chatmailctl --config): {relay.config_path}\n")
    sys.stdout.write("Press Ctrl-C to stop.\n")
    sys.stdout.flush()
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        while not stop and all(p.poll() is None for p in relay.procs.values()):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    dead = [n for n, p in relay.procs.items() if p.poll() is not None]
    relay.stop()
    if dead:
        sys.stderr.write(f"stopped because {', '.join(dead)} exited; logs in {args.dir}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
