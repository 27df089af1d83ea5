"""The files `chatmailctl setup` wants: our snippets composed with Debian's stock config.

Dovecot: conf/dovecot*/ files go to /etc/dovecot/conf.d/ (`*.conf`) or
/etc/dovecot/ (the rest), with `@name@` filled in from chatmail.yaml; the
conf set follows the installed Dovecot release (`dovecot_release`).
Postfix: conf/postfix/main.cf parameters go into /etc/postfix/main.cf with
`postconf -e`, the services of conf/postfix/master.cf into master.cf with
`postconf -M` and `-P`, both on a staged copy; other files are copied.
System: the journald, sysctl and systemd drop-ins.
"""

import grp
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .setupstate import Wanted


class SetupError(Exception):
    """Setup cannot go on; str() is the one-line reason."""


@dataclass(frozen=True)
class DovecotSet:
    """The snippets for one Dovecot release, and the stock includes they replace."""

    snippets: str
    # files of another set under conf/ that this release uses unchanged
    shared: tuple = ()
    # (file under /etc/dovecot, line): Debian's PAM passdb and passwd userdb,
    # which Dovecot cannot drop from a later file: the include is commented out.
    disabled_includes: tuple = (("conf.d/10-auth.conf", "!include auth-system.conf.ext"),)


DOVECOT_SETS = {
    "2.3": DovecotSet("dovecot"),
    "2.4": DovecotSet("dovecot24", shared=("dovecot/chatmail-push.lua",)),
}
DISABLED_MARK = "  # off: chatmailctl setup (doveauth is the only passdb/userdb)"


def dovecot_release(run=subprocess.run) -> tuple:
    """`dovecot --version` -> (release, DovecotSet): the one place that knows releases."""
    try:
        out = run(["dovecot", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SetupError(f"cannot run `dovecot --version` (is dovecot-core installed?): {e}")
    release = ".".join(out.split()[0].split(".")[:2]) if out.strip() else "?"
    if release not in DOVECOT_SETS:
        raise SetupError(f"Dovecot {release} is not supported "
                         f"(known: {', '.join(sorted(DOVECOT_SETS))})")
    return release, DOVECOT_SETS[release]


@dataclass(frozen=True)
class Sources:
    """Where the snippets are: a checkout (conf/, systemd/) or the package's copy."""

    conf: Path
    systemd: Path

    @classmethod
    def find(cls, checkout=None):
        base = Path(checkout) if checkout else Path(__file__).resolve().parents[2]
        if (base / "conf" / "dovecot").is_dir():
            return cls(base / "conf", base / "systemd")
        share = Path("/usr/share/chatmail-services")
        return cls(share, share / "systemd")


def template_values(config, config_file: str) -> dict:
    s = config.setup
    return {name: str(value) for name, value in {
        "mail_domain": config.mail_domain,
        "max_message_size": config.max_message_size,
        "quota_kib": config.max_mailbox_size // 1024,
        "quota_warning_percent": s.quota_warning_percent,
        "imap_max_connections": s.imap_max_connections,
        # imap processes and hibernated sessions are clients of anvil, stats, auth
        "default_client_limit": 2 * s.imap_max_connections + 1000,
        "imap_hibernate_after": s.imap_hibernate_after,
        "submission_max_connections": s.submission_max_connections,
        "submission_max_connections_per_ip": s.submission_max_connections_per_ip,
        "journal_retention": s.journal_retention,
        "config_file": config_file,
    }.items()}


def render(path: Path, values: dict) -> str:
    def fill(match):
        if match.group(1) not in values:
            raise SetupError(f"{path}: unknown placeholder @{match.group(1)}@")
        return values[match.group(1)]

    return re.sub(r"@([a-z_]+)@", fill, path.read_text())


def _owner_of(path: Path):
    st = path.stat()
    return dict(mode=st.st_mode & 0o7777, owner=pwd.getpwuid(st.st_uid).pw_name,
                group=grp.getgrgid(st.st_gid).gr_name)


# -- Dovecot ---------------------------------------------------------------

def dovecot_files(tree, sources: Sources, dset: DovecotSet, values: dict) -> list:
    snippets = sources.conf / dset.snippets
    if not snippets.is_dir():
        raise SetupError(f"no snippets for this Dovecot release in {snippets}")
    wanted = []
    for src in sorted(snippets.iterdir()) + [sources.conf / f for f in dset.shared]:
        where = "etc/dovecot/conf.d" if src.suffix == ".conf" else "etc/dovecot"
        wanted.append(Wanted(f"{where}/{src.name}", render(src, values).encode()))
    for rel, line in dset.disabled_includes:
        edited = _without_include(tree, f"etc/dovecot/{rel}", line)
        if edited is not None:
            wanted.append(edited)
    return wanted


def _without_include(tree, rel: str, line: str):
    text = tree.read(rel)
    if text is None:
        raise SetupError(f"{tree.path(rel)} is missing: is Debian's dovecot-core installed?")
    lines = text.decode().split("\n")
    hits = [i for i, got in enumerate(lines) if got.strip() == line]
    if not hits:
        return None
    for i in hits:
        lines[i] = f"#{line}{DISABLED_MARK}"
    return Wanted(rel, "\n".join(lines).encode(), **_owner_of(tree.path(rel)))


def check_dovecot(stage: Path) -> str:
    """`doveconf -n` of the staged /etc/dovecot; refuses a config with PAM left in."""
    proc = subprocess.run(["doveconf", "-n", "-c", str(stage / "dovecot.conf")],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or "Warning:" in proc.stderr:
        raise SetupError(f"doveconf -n refused the result: {proc.stderr.strip()}")
    for driver in ("pam", "passwd", "shadow"):
        # 2.3 prints `driver = pam`; 2.4 names the section `passdb pam {`
        if re.search(rf"^\s*(driver = |(passdb|userdb) ){driver}( {{)?$", proc.stdout, re.M):
            raise SetupError(f"doveconf -n still shows the {driver} passdb/userdb")
    return proc.stdout


# -- Postfix ---------------------------------------------------------------

MAIN_PARAM = re.compile(r"^([A-Za-z0-9_]+)\s*=\s*(.*)$")


def parse_main_cf(text: str) -> list:
    """`name = value` lines (continuations joined) -> [(name, value)]."""
    params = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and params:
            name, value = params[-1]
            params[-1] = (name, f"{value} {line.strip()}")
            continue
        match = MAIN_PARAM.match(line)
        if not match:
            raise SetupError(f"main.cf snippet: cannot read {line!r}")
        params.append((match.group(1), match.group(2).strip()))
    return params


def parse_master_cf(text: str) -> list:
    """Services -> [(name/type, entry line, [param=value of its -o options])]."""
    services = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            words = line.split(None, 1)
            if not services or words[0] != "-o" or len(words) < 2:
                raise SetupError(f"master.cf snippet: cannot read {line!r}")
            services[-1][2].append(words[1].strip())
            continue
        fields = line.split()
        services.append((f"{fields[0]}/{fields[1]}", " ".join(fields), []))
    return services


def postfix_stage(tree, stage: Path, sources: Sources, values: dict, filter_mode: str) -> list:
    """Apply our main.cf/master.cf to a staged copy of /etc/postfix; return the Wanted."""
    etc = tree.path("etc/postfix")
    if not (etc / "main.cf").exists() or not (etc / "master.cf").exists():
        raise SetupError(f"{etc}/main.cf or master.cf is missing: is Debian's postfix "
                         "installed and configured (not 'No configuration')?")
    shutil.copytree(etc, stage, symlinks=True)
    snippets = sources.conf / "postfix"
    params = parse_main_cf(render(snippets / "main.cf", values))
    postconf(stage, "-e", *(f"{name}={value}" for name, value in params))
    master = "master.cf" if filter_mode == "before" else "master-after-queue.cf"
    for service, entry, options in parse_master_cf(render(snippets / master, values)):
        postconf(stage, "-M", f"{service}={entry}")
        if options:
            postconf(stage, "-P", *(f"{service}/{option}" for option in options))
    wanted = [Wanted(f"etc/postfix/{name}", (stage / name).read_bytes(),
                     **_owner_of(etc / name)) for name in ("main.cf", "master.cf")]
    for src in sorted(snippets.iterdir()):
        if src.name not in ("main.cf", "master.cf", "master-after-queue.cf"):
            content = render(src, values).encode()
            wanted.append(Wanted(f"etc/postfix/{src.name}", content))
            (stage / src.name).write_bytes(content)
    return wanted


def postconf(config_dir: Path, *args) -> str:
    proc = subprocess.run(["postconf", "-c", str(config_dir), *args],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SetupError(f"postconf {' '.join(args[:2])}: {proc.stderr.strip()}")
    return proc.stdout


def check_postfix(stage: Path) -> None:
    proc = subprocess.run(["postfix", "-c", str(stage), "check"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or "fatal" in proc.stderr:
        raise SetupError(f"postfix check refused the result: {proc.stderr.strip()}")


# -- system: journald, sysctl, systemd drop-ins ---------------------------------

SYSTEM_FILES = (
    ("journald/chatmail.conf", "etc/systemd/journald.conf.d/chatmail.conf"),
    ("sysctl/90-chatmail.conf", "etc/sysctl.d/90-chatmail.conf"),
)
DROPINS = ("dovecot.service.d", "postfix@-.service.d")


def system_files(sources: Sources, values: dict) -> list:
    wanted = [Wanted(dest, render(sources.conf / src, values).encode())
              for src, dest in SYSTEM_FILES]
    for dropin in DROPINS:
        for src in sorted((sources.systemd / dropin).iterdir()):
            wanted.append(Wanted(f"etc/systemd/system/{dropin}/{src.name}",
                                 render(src, values).encode()))
    return wanted


def target_path(root: Path, path: str) -> str:
    """How the system set up in `root` names `path` (a path on this machine)."""
    path = os.path.abspath(path)
    root = os.path.abspath(root)
    if root != "/" and (path + "/").startswith(root + "/"):
        return "/" + os.path.relpath(path, root)
    return path
