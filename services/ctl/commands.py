"""What each chatmailctl command does; main.py parses, these act and write lines.

Every function takes what it needs (config, store, output stream, `now`)
and returns the exit status; errors a user can fix raise `Failure`.
Addresses are printed: this is the operator's own tool, not a log.
"""

import os
from dataclasses import replace
from datetime import datetime, timezone

from ..core.addresses import BadAddress, check_address
from ..core.store import day_of, open_store
from ..core.store.migrate import migrate
from ..expire.mailbox import Mailbox, scan_mailbox
from ..expire.policy import DAY

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_FAILED, EXIT_INCOMPLETE = 0, 1, 2, 3, 4


class Failure(Exception):
    """A command's error: str() is the message, `status` the exit status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", DAY), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _checked(config, addr: str) -> str:
    try:
        return check_address(addr, config.mail_domain)
    except BadAddress as e:
        raise Failure(f"{addr!r}: {e}", EXIT_USAGE) from None


# -- config -----------------------------------------------------------------

def config_check(config, out) -> int:
    for warning in config.warnings:
        out.write(f"warning: {warning}\n")
    mailboxes = config.mailboxes_dir
    note = "" if os.path.isdir(mailboxes) else " (does not exist yet)"
    out.write(f"{config.path}: ok\n"
              f"mail_domain: {config.mail_domain}\n"
              f"mailboxes_dir: {mailboxes}{note}\n"
              f"storage: {config.storage}\n"
              f"registration: {_registration_state(config)}\n")
    return EXIT_OK


# -- registration (the commands are in registration.py) ----------------------

def _registration_state(config) -> str:
    from ..core.store.registration import open_registration
    from .registration import state

    registration = open_registration(config)
    try:
        return state(config, registration)
    finally:
        registration.close()


# -- accounts ---------------------------------------------------------------

def accounts_list(store, out, now, long: bool, inactive_days) -> int:
    cutoff = None if inactive_days is None else now - inactive_days * DAY
    for addr in store.iter_accounts():
        last = store.get_last_login(addr) if long or cutoff is not None else None
        if cutoff is not None and (last is None or last >= cutoff):
            continue
        out.write(f"{addr}\t{utc_day(last) if last is not None else '-'}\n" if long
                  else f"{addr}\n")
    return EXIT_OK


def accounts_show(config, store, addr, out, now) -> int:
    addr = _checked(config, addr)
    last = store.get_last_login(addr)
    if last is None:
        raise Failure(f"no such account: {addr}", EXIT_NOT_FOUND)
    problems = []
    try:
        box = scan_mailbox(os.path.join(config.mailboxes_dir, addr),
                           lambda kind, path: problems.append(kind))
    except FileNotFoundError:  # a store that keeps accounts elsewhere, no mail yet
        box = Mailbox(addr)
    pending = sum(1 for item in store.iter_pending_notifications() if item.addr == addr)
    expires = day_of(last) + config.expire.delete_inactive_users_after * DAY
    out.write(f"address: {addr}\n"
              f"last_login: {utc_day(last)} ({age(now - last)} ago)\n"
              f"expires: after {utc_day(expires)} unless it logs in again\n"
              f"incoming_cleartext: {_cleartext(store, addr)}\n"
              f"messages: {len(box.messages)} ({sum(m.size for m in box.messages)} bytes)\n"
              f"pending_notifications: {pending}\n")
    if problems:
        out.write(f"unreadable: {len(problems)} files or folders\n")
    return EXIT_OK


def _cleartext(store, addr) -> str:
    return "refused" if store.enforces_e2ee_incoming(addr) else "accepted"


def accounts_delete(config, store, addrs, out, err) -> int:
    checked = [_checked(config, addr) for addr in addrs]
    status = EXIT_OK
    for addr in checked:
        if store.delete_account(addr):
            out.write(f"deleted {addr}\n")
        else:
            err.write(f"chatmailctl: no such account: {addr}\n")
            status = EXIT_NOT_FOUND
    return status


# -- queue ------------------------------------------------------------------

def queue_show(store, out, now) -> int:
    items = sorted(store.iter_pending_notifications(), key=lambda i: i.queued_at)
    oldest = f", oldest queued {age(now - items[0].queued_at)} ago" if items else ""
    out.write(f"{len(items)} pending notifications{oldest}\n")
    for item in items:
        out.write(f"{item.id}\t{age(now - item.queued_at)}\t{item.addr}\n")
    return EXIT_OK


# -- store --------------------------------------------------------------------

def _redis_url(config, url) -> str:
    url = url or (config.storage if config.storage != "files" else None)
    if not url:
        raise Failure("store migrate: storage is 'files': give the Redis URL with --url",
                      EXIT_USAGE)
    if not url.startswith(("redis://", "rediss://")):
        raise Failure(f"store migrate: --url: expected redis:// or rediss://, got {url!r}",
                      EXIT_USAGE)
    return url


def store_migrate(config, to: str, url, out, now) -> int:
    """Copy everything between the files store and Redis (the `redis:` section
    of the config applies to the URL), print the report; 4 unless it is ok."""
    redis_config = replace(config, storage=_redis_url(config, url))
    files, redis_store = open_store(replace(config, storage="files")), open_store(redis_config)
    source, target = (files, redis_store) if to == "redis" else (redis_store, files)
    try:
        report = migrate(source, target, now, config.metadata.token_max_age_days * DAY)
    finally:
        redis_store.close()
    for kind, addrs in (("conflict", report.conflicts), ("damaged", report.damaged),
                        ("missing", report.missing), ("tokens missing", report.tokens_missing)):
        for addr in addrs:
            out.write(f"{kind}: {addr}\n")
    out.write(f"{'ok' if report.ok else 'INCOMPLETE'}: {report.summary()}\n")
    return EXIT_OK if report.ok else EXIT_INCOMPLETE
