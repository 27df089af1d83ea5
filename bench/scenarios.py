"""Dict workloads for ``dictload.py``: what each request asks, built without I/O.

Keys follow what Dovecot 2.3 sends to the chatmail daemons
(docs/dict-protocol.md): ``shared/passdb/<%E password>"<%E user>`` and
``shared/userdb/<user>`` to doveauth (dict name ``auth``),
``shared/last-login/<user>`` in a transaction to lastlogin, and
``priv/<guid>/devicetoken`` / ``priv/<guid>/messagenew`` (IMAP METADATA
and the push Lua script) to metadata.
"""

import json
import os
import string
import time
from dataclasses import dataclass
from typing import Callable

from dictwire import Iterate, Lookup, Transaction, percent_e

LOCALPART_CHARS = string.ascii_lowercase + string.digits
PASSWORD_CHARS = string.ascii_letters + string.digits
LOCALPART_LENGTH = 9
PASSWORD_LENGTH = 12


@dataclass(frozen=True)
class Account:
    addr: str
    password: str


@dataclass(frozen=True)
class Scenario:
    name: str
    dict_name: str
    accounts: str  # "existing": created (or loaded) first; "any": a pool; "": none
    next_op: Callable[[], object]


@dataclass
class Context:
    """Everything a scenario may draw on; filled from the command line."""

    rng: object  # random.Random
    domain: str
    accounts: list
    dict_name: str = ""
    key_template: str = ""
    iterate_path: str = "shared/userdb/"


def fresh_account(rng, domain):
    """A never-seen address ``<9 x [a-z0-9]>@domain`` and a password."""
    local = "".join(rng.choices(LOCALPART_CHARS, k=LOCALPART_LENGTH))
    password = "".join(rng.choices(PASSWORD_CHARS, k=PASSWORD_LENGTH))
    return Account(f"{local}@{domain}", password)


def home_of(addr):
    """What the JSON answer for `addr` holds on both sides: its home, which ends
    in the address (`"home": ".../<addr>"`)."""
    return f'/{addr}"'


def passdb_lookup(account):
    """The lookup that logs in, and creates the account if it is new."""
    key = f'shared/passdb/{percent_e(account.password)}"{percent_e(account.addr)}'
    return Lookup(key, account.addr, home_of(account.addr))


def creation_ops(accounts):
    """Setup: one passdb lookup per account, in order."""
    pending = iter(accounts)
    return lambda: passdb_lookup(next(pending))


def pick(ctx):
    """A random account from the pool; a fresh one when the pool is empty."""
    if ctx.accounts:
        return ctx.rng.choice(ctx.accounts)
    return fresh_account(ctx.rng, ctx.domain)


def _passdb_existing(ctx):
    return lambda: passdb_lookup(pick(ctx))


def _passdb_create(ctx):
    return lambda: passdb_lookup(fresh_account(ctx.rng, ctx.domain))


def _userdb(ctx):
    def next_op():
        addr = pick(ctx).addr
        return Lookup(f"shared/userdb/{addr}", addr, home_of(addr))

    return next_op


def _lastlogin(ctx):
    def next_op():
        addr = pick(ctx).addr
        stamp = str(int(time.time()))
        return Transaction(addr, ((f"shared/last-login/{addr}", stamp),))

    return next_op


MAILBOX_GUID = "43f5f508a7ea0366dff30200c15250e3"  # Dovecot sends INBOX's; any will do
TOKENS_PER_USER = 3  # devices per address in the token scenarios


def _token_set(ctx):
    def next_op():
        addr = pick(ctx).addr
        token = f"bench-{ctx.rng.randrange(TOKENS_PER_USER)}-{addr}"
        return Transaction(addr, ((f"priv/{MAILBOX_GUID}/devicetoken", token),))

    return next_op


def _token_lookup(ctx):
    def next_op():
        addr = pick(ctx).addr
        return Lookup(f"priv/{MAILBOX_GUID}/devicetoken", addr)

    return next_op


def _messagenew(ctx):
    def next_op():
        addr = pick(ctx).addr
        return Transaction(addr, ((f"priv/{MAILBOX_GUID}/messagenew", ""),))

    return next_op


def _iterate(ctx):
    return lambda: Iterate(ctx.iterate_path, "")


def _template(ctx):
    """``--key-template``: fields {user}, {password}, {ts} filled per request."""

    def next_op():
        account = pick(ctx)
        key = ctx.key_template.format(
            user=account.addr, password=account.password, ts=int(time.time())
        )
        return Lookup(key, account.addr)

    return next_op


# name -> (default dict name, accounts it uses (see Scenario), op factory)
SCENARIOS = {
    "passdb-existing": ("auth", "existing", _passdb_existing),
    "passdb-create": ("auth", "", _passdb_create),
    "userdb": ("auth", "existing", _userdb),
    "lastlogin": ("lastlogin", "any", _lastlogin),
    "iterate": ("auth", "", _iterate),
    "lookup": ("auth", "any", _template),
    "devicetoken-set": ("metadata", "any", _token_set),
    "devicetoken-lookup": ("metadata", "any", _token_lookup),
    "messagenew": ("metadata", "any", _messagenew),
}


def build(name, ctx):
    """The named scenario over ``ctx``; ``ctx.dict_name`` overrides the dict."""
    dict_name, accounts, factory = SCENARIOS[name]
    return Scenario(name, ctx.dict_name or dict_name, accounts, factory(ctx))


def load_accounts(path):
    with open(path, encoding="utf-8") as f:
        return [Account(addr, pw) for addr, pw in json.load(f)]


def save_accounts(path, accounts):
    """Benchmark-only credentials, still written owner-readable only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        json.dump([[a.addr, a.password] for a in accounts], f)
