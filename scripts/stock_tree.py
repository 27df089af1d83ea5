"""A fresh Debian /etc/dovecot and /etc/postfix under a directory, from the installed packages.

What dovecot-core's and postfix's maintainer scripts would write on a new
machine ("Internet Site"), built from the packages' own copies, never from
this host's /etc (which may be modified):

    /etc/dovecot   <- /usr/share/dovecot (dovecot.conf, conf.d/, *.conf.ext; ucf's source;
                      Debian 13 keeps the *.conf.ext in conf.d/)
    /etc/postfix   <- /usr/share/postfix/main.cf.debian (+ main.cf.tls when the
                      snakeoil key exists), master.cf.dist, dynamicmaps.cf for the
                      installed map modules, the debconf answers postinst applies;
                      dpkg's conffiles (postfix-files, post-install, postfix-script)
                      copied only when their md5sum is the one dpkg recorded.

Used by scripts/local_relay.py and the setup tests. `python3 stock_tree.py DIR`.
"""

import hashlib
import shutil
import socket
import subprocess
import sys
from pathlib import Path

DOVECOT_SHARE = Path("/usr/share/dovecot")
POSTFIX_SHARE = Path("/usr/share/postfix")
SNAKEOIL_KEY = Path("/etc/ssl/private/ssl-cert-snakeoil.key")
# Debian 13 ships an empty example that postinst does not install to /etc
NOT_IN_ETC = ("99-local.conf",)


def build(root: Path, hostname: str = "") -> Path:
    root = Path(root)
    dovecot_tree(root / "etc/dovecot")
    postfix_tree(root / "etc/postfix", hostname or socket.getfqdn())
    return root


def dovecot_tree(etc: Path) -> None:
    (etc / "conf.d").mkdir(parents=True, exist_ok=True)
    shutil.copy(DOVECOT_SHARE / "dovecot.conf", etc / "dovecot.conf")
    for src in sorted((DOVECOT_SHARE / "conf.d").iterdir()):
        if src.name not in NOT_IN_ETC:
            shutil.copy(src, etc / "conf.d" / src.name)
    for src in sorted(DOVECOT_SHARE.glob("*.conf.ext")):
        shutil.copy(src, etc / src.name)
        (etc / src.name).chmod(0o640)
        shutil.chown(etc / src.name, "root", "dovecot")
    (etc / "private").mkdir(mode=0o700, exist_ok=True)


def postfix_tree(etc: Path, hostname: str) -> None:
    for sub in ("", "sasl", "dynamicmaps.cf.d", "postfix-files.d"):
        (etc / sub).mkdir(parents=True, exist_ok=True)
    main = (POSTFIX_SHARE / "main.cf.debian").read_text()
    if SNAKEOIL_KEY.exists():
        main += (POSTFIX_SHARE / "main.cf.tls").read_text()
    (etc / "main.cf").write_text(main)
    shutil.copy(POSTFIX_SHARE / "master.cf.dist", etc / "master.cf")
    (etc / "dynamicmaps.cf").write_text(installed_maps())
    for name, md5 in dpkg_conffiles("postfix", "/etc/postfix/"):
        src = Path("/etc/postfix") / name
        if hashlib.md5(src.read_bytes()).hexdigest() != md5:
            raise RuntimeError(f"{src} differs from the postfix package's version")
        shutil.copy2(src, etc / name)
    short = hostname.split(".")[0]
    for setting in ("smtpd_relay_restrictions=permit_mynetworks permit_sasl_authenticated "
                    "defer_unauth_destination",
                    f"myhostname={hostname}", "alias_maps=hash:/etc/aliases",
                    "alias_database=hash:/etc/aliases",
                    f"mydestination=$myhostname, {short}, localhost.localdomain, localhost",
                    "relayhost=", "mynetworks=127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
                    "mailbox_size_limit=0", "recipient_delimiter=+",
                    "inet_interfaces=all", "inet_protocols=all"):
        # one at a time, as postinst does: postconf -e appends new names in hash order
        subprocess.run(["postconf", "-c", str(etc), "-e", setting], check=True)


def installed_maps() -> str:
    """dynamicmaps.cf as postinst writes it: comments, and the modules that are installed."""
    lines = []
    for line in (POSTFIX_SHARE / "dynamicmaps.cf").read_text().splitlines():
        if line.startswith("#") or Path(f"/usr/lib/postfix/postfix-{line.split()[0]}.so").exists():
            lines.append(line)
    return "\n".join(lines) + "\n"


def dpkg_conffiles(package: str, under: str):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}\n", package],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].startswith(under) and not _gone(fields):
            yield fields[0][len(under):], fields[1]


def _gone(fields) -> bool:
    """A conffile dpkg no longer installs: obsolete, or (Debian 13's postfix-script,
    post-install) `newconffile remove-on-upgrade`."""
    return "obsolete" in fields or "remove-on-upgrade" in fields


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
