"""`chatmail-expire --config FILE [--remove] [quota ADDR]`: expiry, daily or on demand.

Without a command: one pass over every mailbox (systemd's chatmail-expire.timer
runs it daily). `quota ADDR`: trim one mailbox now, for Dovecot's
`quota_warning` script service. Both are dry runs unless `--remove` is given.

Prints one summary line on stdout; with `--verbose`, one line per deletion
and per problem on stderr (these name accounts). Exit status: 0 done, 1 the
mailboxes directory cannot be read, 2 bad arguments or config.
"""

import argparse
import os
import sys
import time

from ..core.addresses import address_refusal
from ..core.config import ConfigError, load_config
from ..core.store import StoreError, open_store
from .run import Expiry
from .stats import write_textfile

PROG = "chatmail-expire"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="chatmail.yaml (or a legacy chatmail.ini)")
    parser.add_argument("--remove", action="store_true",
                        help="really delete (default: report what would be deleted)")
    parser.add_argument("--now", type=float, metavar="UNIXTIME", default=None,
                        help="expire as if it were this time (default: now)")
    parser.add_argument("--textfile", metavar="PATH", default=None,
                        help="write Prometheus statistics here (default: expire.metrics_textfile)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="name every deletion and problem on stderr")
    sub = parser.add_subparsers(dest="command", metavar="{quota}")
    quota = sub.add_parser("quota", help="trim one mailbox (Dovecot's quota_warning)")
    quota.add_argument("addr", help="the account, as Dovecot's %%u")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    sys.exit(run(argv))


def run(argv=None, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        err.write(f"{PROG}: {e}\n")
        return 2
    verbose = (lambda line: err.write(f"{PROG}: {line}\n")) if args.verbose else None
    now = time.time() if args.now is None else args.now
    store = open_store(config)
    try:
        expiry = Expiry(config, store.accounts, now, args.remove, verbose)
        if args.command == "quota":
            return _quota(expiry, config, args.addr, out, err)
        return _full(expiry, config, args, out, err)
    finally:
        store.close()


def _full(expiry, config, args, out, err) -> int:
    try:
        tally = expiry.run()
    except (OSError, StoreError) as e:
        err.write(f"{PROG}: cannot read {config.mailboxes_dir}: {e}\n")
        return 1
    out.write(f"{PROG}: {tally.summary()}\n")
    textfile = args.textfile or config.expire.metrics_textfile
    if textfile:
        try:
            write_textfile(textfile, tally)
        except OSError as e:
            err.write(f"{PROG}: cannot write {textfile}: {e.strerror}\n")
            return 1
    return 0


def _quota(expiry, config, addr, out, err) -> int:
    refused = address_refusal(addr, config.mail_domain)
    if refused is not None:
        err.write(f"{PROG}: quota: {refused}\n")
        return 2
    expiry.expire_mailbox(os.path.join(config.mailboxes_dir, addr))
    out.write(f"{PROG}: quota: {expiry.tally.summary()}\n")
    return 0
