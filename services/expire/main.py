"""`chatmail-expire --config FILE [--remove] [quota ADDR]`: expiry, daily or on demand.

What a pass deletes, the quota hook and the exit statuses are the operator's
manual, docs/expire.md; this module parses the command line, runs one pass
(run.py) or trims one mailbox, and writes the summary and the textfile.
"""

import os
import sys
import time

from ..core.addresses import BadAddress, check_address
from ..core.entry import EXIT_USAGE, console, run_tool, tool_parser
from ..core.store import StoreError, open_store
from .run import Expiry
from .stats import write_textfile

PROG = "chatmail-expire"


def build_parser():
    parser = tool_parser(PROG, __doc__.splitlines()[0])
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
    return parser


def run(argv=None, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    return run_tool(PROG, build_parser(), argv,
                    lambda args, config: _expire(args, config, out, err), err)


main = console(run)


def _expire(args, config, out, err) -> int:
    verbose = (lambda line: err.write(f"{PROG}: {line}\n")) if args.verbose else None
    now = time.time() if args.now is None else args.now
    store = open_store(config)
    try:
        expiry = Expiry(config, store, now, args.remove, verbose)
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
    try:
        check_address(addr, config.mail_domain)
    except BadAddress as e:
        err.write(f"{PROG}: quota: {e}\n")
        return EXIT_USAGE
    expiry.expire_mailbox(os.path.join(config.mailboxes_dir, addr))
    out.write(f"{PROG}: quota: {expiry.tally.summary()}\n")
    return 0
