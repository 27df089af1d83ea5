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
from . import commands, dns, registration, setup
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

    registration.add_parsers(top)
    records = top.add_parser("dns", help="the zone records the relay needs")
    records.add_argument("--check", action="store_true",
                         help="compare with what the nameserver answers (exit 5 if not)")
    records.add_argument("--nameserver", metavar="HOST[:PORT]",
                         help="ask this server (default: the system's resolver)")
    records.add_argument("--ipv4", metavar="ADDR", help="the relay's public IPv4 address")
    records.add_argument("--ipv6", metavar="ADDR", help="the relay's public IPv6 address")
    records.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                         help="per lookup (default 5)")
    queue = top.add_parser("queue", help="pending push notifications")
    queue.add_subparsers(dest="action", required=True).add_parser("show")

    store = top.add_parser("store", help="move the relay's state to another backend")
    migrate = store.add_subparsers(dest="action", required=True).add_parser(
        "migrate", help="copy accounts, push tokens and notifications, then verify")
    migrate.add_argument("--to", required=True, choices=["redis", "files"],
                         help="the target; the source is the other one")
    migrate.add_argument("--url", metavar="URL",
                         help="redis://host:port/db (default: storage, if it is a Redis URL)")
    setup.add_parser(top)
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
    except BrokenPipeError:
        raise  # our reader left: core/entry.py stops quietly
    except (StoreError, OSError) as e:
        err.write(f"{PROG}: {e}\n")
        return EXIT_FAILED


def _dispatch(args, config, out, err, now) -> int:
    if args.group == "config":
        return commands.config_check(config, out)
    if args.group == "dns":
        if args.check:
            return dns.check(config, out, args.nameserver, args.ipv4, args.ipv6,
                             timeout=args.timeout)
        return dns.show(config, out, args.ipv4, args.ipv6)
    if args.group in ("registration", "invite"):
        return registration.dispatch(args, config, out, now)
    if args.group == "setup":
        return setup.run_setup(config, args, out, err)
    if args.group == "store":
        return commands.store_migrate(config, args.to, args.url, out, now)
    store = open_store(config)
    try:
        match (args.group, args.action):
            case ("accounts", "list"):
                return commands.accounts_list(store.accounts, out, now, args.long, args.inactive_days)
            case ("accounts", "show"):
                return commands.accounts_show(config, store, args.addr, out, now)
            case ("accounts", "delete"):
                return commands.accounts_delete(config, store.accounts, args.addrs, out, err)
            case ("queue", "show"):
                return commands.queue_show(store.push, out, now)
    finally:
        store.close()
    raise AssertionError(f"unhandled command {args.group} {args.action}")
