"""`chatmailctl --config FILE COMMAND`: administer a relay from a shell or a script.

The commands, their output and exit statuses are the operator's manual,
docs/chatmailctl.md; this module parses the command line and hands each
command to `commands`, mapping the failures every command may meet to an
exit status at one boundary.
"""

import argparse
import sys
import time

from ..core.entry import console, run_tool, tool_parser
from ..core.store import StoreError, open_store
from . import commands
from .commands import EXIT_FAILED, Failure

PROG = "chatmailctl"


def build_parser() -> argparse.ArgumentParser:
    parser = tool_parser(PROG, __doc__.splitlines()[0])
    top = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    config = top.add_parser("config", help="check the configuration")
    config.add_subparsers(dest="action", required=True).add_parser("check")

    accounts = top.add_parser("accounts", help="list, show, delete accounts")
    acts = accounts.add_subparsers(dest="action", required=True)
    listing = acts.add_parser("list", help="one address per line, unordered")
    listing.add_argument("--long", action="store_true", help="add the last-login day (UTC)")
    listing.add_argument("--inactive-days", type=int, metavar="N",
                         help="only accounts without a login for N days")
    acts.add_parser("show", help="one account's details").add_argument("addr")
    acts.add_parser("delete", help="delete accounts and all their data").add_argument(
        "addrs", nargs="+", metavar="addr")

    registration = top.add_parser("registration", help="allow or stop new accounts")
    registration.add_argument("action", choices=["block", "unblock", "status"])
    queue = top.add_parser("queue", help="pending push notifications")
    queue.add_subparsers(dest="action", required=True).add_parser("show")

    store = top.add_parser("store", help="move the relay's state to another backend")
    migrate = store.add_subparsers(dest="action", required=True).add_parser(
        "migrate", help="copy accounts, push tokens and notifications, then verify")
    migrate.add_argument("--to", required=True, choices=["redis", "files"],
                         help="the target; the source is the other one")
    migrate.add_argument("--url", metavar="URL",
                         help="redis://host:port/db (default: storage, if it is a Redis URL)")
    return parser


def run(argv=None, out=None, err=None, now=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    now = time.time() if now is None else now
    return run_tool(PROG, build_parser(), argv,
                    lambda args, config: _guarded(args, config, out, err, now), err)


main = console(run)


def _guarded(args, config, out, err, now) -> int:
    """One boundary for the failures every command may meet."""
    try:
        return _dispatch(args, config, out, err, now)
    except Failure as e:
        err.write(f"{PROG}: {e}\n")
        return e.status
    except (StoreError, OSError) as e:
        err.write(f"{PROG}: {e}\n")
        return EXIT_FAILED
    except NotImplementedError as e:
        err.write(f"{PROG}: not supported by storage {config.storage!r}: {e}\n")
        return EXIT_FAILED


def _dispatch(args, config, out, err, now) -> int:
    if args.group == "config":
        return commands.config_check(config, out)
    if args.group == "registration":
        return commands.registration(config, args.action, out)
    if args.group == "store":
        return commands.store_migrate(config, args.to, args.url, out, now)
    store = open_store(config)
    try:
        match (args.group, args.action):
            case ("accounts", "list"):
                return commands.accounts_list(store, out, now, args.long, args.inactive_days)
            case ("accounts", "show"):
                return commands.accounts_show(config, store, args.addr, out, now)
            case ("accounts", "delete"):
                return commands.accounts_delete(config, store, args.addrs, out, err)
            case ("queue", "show"):
                return commands.queue_show(store, out, now)
    finally:
        store.close()
    raise AssertionError(f"unhandled command {args.group} {args.action}")
