"""What each chatmailctl command does; main.py parses, these act and write lines
(the decisions are in policy.py).

Every function takes what it needs (config, the store roles it uses, output
stream, `now`) and returns the exit status; errors a user can fix raise
`Failure`.
Addresses are printed: this is the operator's own tool, not a log.
"""

import os
from dataclasses import replace
from datetime import datetime, timezone

from ..core.addresses import address_refusal
from ..core.days import DAY
from ..core.maildir import Mailbox, scan_mailbox
from ..core.store import open_store
from ..core.store.migrate import migrate
from .policy import expiry_day, inactive

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
    refused = address_refusal(addr, config.mail_domain)
    if refused is not None:
        raise Failure(f"{addr!r}: {refused}", EXIT_USAGE)
    return addr


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
    from .registration import state

    store = open_store(config)
    try:
        return state(config, store.registration)
    finally:
        store.close()


# -- accounts ---------------------------------------------------------------

def accounts_list(accounts, out, now, long: bool, inactive_days) -> int:
    for addr in accounts.iter_accounts():
        last = accounts.get_last_login(addr) if long or inactive_days is not None else None
        if inactive_days is not None and not inactive(last, now, inactive_days):
            continue
        out.write(f"{addr}\t{utc_day(last) if last is not None else '-'}\n" if long
                  else f"{addr}\n")
    return EXIT_OK


def accounts_show(config, store, addr, out, now) -> int:
    """One account's details; `store` for its Accounts and PushQueue roles."""
    addr = _checked(config, addr)
    last = store.accounts.get_last_login(addr)
    if last is None:
        raise Failure(f"no such account: {addr}", EXIT_NOT_FOUND)
    problems = []
    try:
        box = scan_mailbox(os.path.join(config.mailboxes_dir, addr),
                           lambda kind, path: problems.append(kind))
    except FileNotFoundError:  # a store that keeps accounts elsewhere, no mail yet
        box = Mailbox(addr)
    pending = sum(1 for item in store.push.iter_pending_notifications() if item.addr == addr)
    expires = expiry_day(last, config)
    out.write(f"address: {addr}\n"
              f"last_login: {utc_day(last)} ({age(now - last)} ago)\n"
              f"expires: after {utc_day(expires)} unless it logs in again\n"
              f"incoming_cleartext: {_cleartext(store.accounts, addr)}\n"
              f"messages: {len(box.messages)} ({sum(m.size for m in box.messages)} bytes)\n"
              f"pending_notifications: {pending}\n")
    if problems:
        out.write(f"unreadable: {len(problems)} files or folders\n")
    return EXIT_OK


def _cleartext(accounts, addr) -> str:
    return "refused" if accounts.enforces_e2ee_incoming(addr) else "accepted"


def accounts_delete(config, accounts, addrs, out, err) -> int:
    checked = [_checked(config, addr) for addr in addrs]
    status = EXIT_OK
    for addr in checked:
        if accounts.delete_account(addr):
            out.write(f"deleted {addr}\n")
        else:
            err.write(f"chatmailctl: no such account: {addr}\n")
            status = EXIT_NOT_FOUND
    return status


# -- queue ------------------------------------------------------------------

def queue_show(push, out, now) -> int:
    items = sorted(push.iter_pending_notifications(), key=lambda i: i.queued_at)
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
