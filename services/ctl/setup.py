"""`chatmailctl --config FILE setup [--root DIR] [--undo]`: wire Debian's Dovecot and Postfix.

Composes our snippets with the stock /etc/dovecot and /etc/postfix for the
configured mail_domain (setupcompose.py), checks the result on a staged copy
(`doveconf -n`, `postfix check`), then writes only the files that differ,
keeping the originals for `--undo` (setupstate.py), makes the DKIM key if
there is none (setupdkim.py), reloads what changed and prints the DNS records.
Running it again changes nothing. With `--root DIR` it works on the tree
under DIR (an image, a chroot, a test) and reloads nothing.
What it changes, file by file: docs/setup.md.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from . import dns, setupdkim
from .setupcompose import (
    SetupError,
    Sources,
    check_dovecot,
    check_postfix,
    dovecot_files,
    dovecot_release,
    postfix_stage,
    system_files,
    target_path,
    template_values,
)
from .setupstate import Tree

EXIT_FAILED = 3


def add_parser(top) -> None:
    setup = top.add_parser("setup", help="wire Debian's Dovecot and Postfix for this relay")
    setup.add_argument("--root", default="/", metavar="DIR",
                       help="the filesystem tree to set up (default: /; others are not reloaded)")
    setup.add_argument("--undo", action="store_true",
                       help="restore the files as they were before setup")
    setup.add_argument("--no-reload", action="store_true",
                       help="write and check the files, reload nothing")
    setup.add_argument("--postfix-filter", choices=["before", "after"], default="before",
                       help="filtermail before-queue (default) or after-queue")
    setup.add_argument("--sources", metavar="DIR",
                       help="a checkout whose conf/ and systemd/ to use "
                            "(default: this program's own, or /usr/share/chatmail-services)")


def run_setup(config, args, out, err) -> int:
    tree = Tree(args.root)
    try:
        if args.undo:
            return _undo(tree, args, out)
        return _setup(config, tree, args, out)
    except SetupError as e:
        err.write(f"chatmailctl setup: {e}\n")
        return EXIT_FAILED


def _setup(config, tree, args, out) -> int:
    release, dset = dovecot_release()
    sources = Sources.find(args.sources)
    values = template_values(config, target_path(tree.root, config.path))
    with tempfile.TemporaryDirectory(prefix="chatmail-setup-") as tmp:
        stage = Path(tmp)
        wanted = dovecot_files(tree, sources, dset, values)
        wanted += postfix_stage(tree, stage / "postfix", sources, values, args.postfix_filter)
        wanted += system_files(sources, values)
        _stage_dovecot(tree, stage / "dovecot", wanted)
        check_dovecot(stage / "dovecot")
        check_postfix(stage / "postfix")
    out.write(f"chatmailctl setup: Dovecot {release} ({dset.snippets} snippets), "
              f"Postfix, tree {tree.root}; checked with doveconf -n and postfix check\n")
    _dkim(config, tree, out)  # before any file changes: a key that fails stops here
    changes = [w for w in wanted if tree.differs(w)]
    tree.apply(changes)
    for w in changes:
        out.write(f"changed: /{w.path}\n")
    if not changes:
        out.write("nothing to change: every file is already as setup wants it\n")
    else:
        out.write(f"originals kept for --undo in {tree.state}\n")
    _reload(tree, [w.path for w in changes], args, out)
    out.write(f"\nDNS records for {config.mail_domain} (`chatmailctl dns` prints them again):\n")
    return dns.show(config, out, key_path=lambda f: str(setupdkim.key_path(tree.root, f)))


def _stage_dovecot(tree, stage: Path, wanted) -> None:
    shutil.copytree(tree.path("etc/dovecot"), stage, symlinks=True)
    for w in wanted:
        if w.path.startswith("etc/dovecot/"):
            dest = stage / w.path[len("etc/dovecot/"):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(w.content)


def _dkim(config, tree, out):
    sign = config.filtermail.dkim.sign
    if sign is None:
        out.write("DKIM signing is off (filtermail.dkim.sign: null): other chatmail "
                  "relays refuse unsigned mail\n")
        return None
    path = setupdkim.key_path(tree.root, sign.key_file)
    if setupdkim.ensure_key(path):
        out.write(f"made DKIM key {path} (selector {sign.selector}); publish its record\n")
    try:
        return dns.dkim_value(str(path))
    except (OSError, ValueError) as e:
        raise SetupError(f"{path}: not a readable private key: {e}") from None


def _reload(tree, changed, args, out) -> None:
    if not changed:
        return
    if str(tree.root) != "/" or args.no_reload:
        out.write("not reloading anything (--root or --no-reload)\n")
        return
    for cmd in reload_commands(changed):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise SetupError(f"{' '.join(cmd)}: {proc.stderr.strip()} (files are written; "
                             "fix the cause and run setup again, or --undo)")
        out.write(f"ran: {' '.join(cmd)}\n")


def reload_commands(changed) -> list:
    def touched(prefix):
        return any(path.startswith(prefix) for path in changed)

    cmds = []
    if touched("etc/sysctl.d/"):
        cmds.append(["sysctl", "-p", "/etc/sysctl.d/90-chatmail.conf"])
    if touched("etc/systemd/"):
        cmds.append(["systemctl", "daemon-reload"])
    if touched("etc/systemd/journald.conf.d/"):
        cmds.append(["systemctl", "restart", "systemd-journald"])
    if touched("etc/systemd/system/dovecot.service.d/"):
        cmds.append(["systemctl", "restart", "dovecot"])
    elif touched("etc/dovecot/"):
        cmds.append(["systemctl", "reload-or-restart", "dovecot"])
    if touched("etc/systemd/system/postfix@-.service.d/"):
        cmds.append(["systemctl", "restart", "postfix"])
    elif touched("etc/postfix/"):
        cmds.append(["systemctl", "reload-or-restart", "postfix"])
    return cmds


def _undo(tree, args, out) -> int:
    restored = tree.undo()
    if not restored:
        out.write(f"chatmailctl setup --undo: nothing to undo in {tree.root}\n")
        return 0
    for path in restored:
        out.write(f"restored: /{path}\n")
    out.write("the DKIM key is kept (its record may be published)\n")
    _reload(tree, restored, args, out)
    return 0
