"""chatmailctl's registration and invite commands.

    registration open|invite|closed|status   the relay's mode (block/unblock: closed/open)
    invite create [--uses N] [--days D] [--qr]
                                             a new invite; its DCACCOUNT URL is the last line
    invite list                              id, uses left of uses, expiry (never the token)
    invite revoke ID

The mode lives in the store (on Redis: one for every host). The legacy
switch file `doveauth.nocreate_file` still closes this host whatever the
mode; `registration open` removes it. A token is printed once, at creation:
the store keeps only its hash.
"""

import os
from datetime import datetime, timezone

from ..core.store.registration import new_token, open_registration, token_hash
from ..core.weblinks import dcaccount_url

ALIASES = {"block": "closed", "unblock": "open"}
DAY = 86400


def add_parsers(top) -> None:
    registration = top.add_parser("registration", help="the registration mode: open, "
                                  "invite-only or closed")
    registration.add_argument("action", choices=["open", "invite", "closed", "status",
                                                 "block", "unblock"])
    invite = top.add_parser("invite", help="create, list, revoke invites")
    acts = invite.add_subparsers(dest="action", required=True)
    create = acts.add_parser("create", help="a new invite; prints its DCACCOUNT URL last")
    create.add_argument("--uses", type=_positive, default=1, metavar="N",
                        help="accounts it may create (default 1)")
    create.add_argument("--days", type=_positive, default=7, metavar="D",
                        help="days until it expires (default 7)")
    create.add_argument("--qr", action="store_true", help="also draw the QR code here")
    acts.add_parser("list", help="the invites, without their tokens")
    acts.add_parser("revoke", help="delete an invite").add_argument("id")


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def state(config, registration) -> str:
    """The mode as this host applies it, in one line."""
    mode = registration.get_mode()
    path = config.doveauth.nocreate_file
    if os.path.exists(path) and mode != "closed":
        return f"closed ({path} exists on this host; the relay's mode is {mode})"
    return mode


def dispatch(args, config, out, now) -> int:
    registration = open_registration(config)
    try:
        if args.group == "registration":
            return set_mode(config, registration, ALIASES.get(args.action, args.action), out)
        match args.action:
            case "create":
                return create(config, registration, args.uses, args.days, args.qr, out, now)
            case "list":
                return listing(registration, out, now)
            case "revoke":
                return revoke(registration, args.id, out)
    finally:
        registration.close()
    raise AssertionError(f"unhandled command {args.group} {args.action}")


def set_mode(config, registration, mode: str, out) -> int:
    if mode != "status":
        registration.set_mode(mode)
    if mode == "open":
        try:
            os.unlink(config.doveauth.nocreate_file)
        except FileNotFoundError:
            pass
    out.write(f"registration: {state(config, registration)}\n")
    return 0


def create(config, registration, uses: int, days: int, qr: bool, out, now) -> int:
    token = new_token()
    invite = registration.add_invite(token_hash(token), uses, now, now + days * DAY)
    url = dcaccount_url(config, token)
    out.write(f"invite {invite.id}: {uses} {'use' if uses == 1 else 'uses'}, "
              f"expires {utc(invite.expires)}\n")
    mode = registration.get_mode()
    if mode != "invite":
        out.write(f"note: registration is {mode}; invites count only in the invite mode\n")
    if qr:
        import segno

        segno.make(url, error="m").terminal(out=out, border=2)
    out.write(f"{url}\n")
    return 0


def listing(registration, out, now) -> int:
    for invite in registration.list_invites(now):
        expired = " (expired)" if now >= invite.expires else ""
        out.write(f"{invite.id}\t{invite.uses_left}/{invite.uses} uses left\t"
                  f"expires {utc(invite.expires)}{expired}\n")
    return 0


def revoke(registration, invite_id: str, out) -> int:
    from .commands import EXIT_NOT_FOUND, Failure

    if not registration.revoke_invite(invite_id.lower()):
        raise Failure(f"no such invite: {invite_id}", EXIT_NOT_FOUND)
    out.write(f"revoked {invite_id.lower()}\n")
    return 0
