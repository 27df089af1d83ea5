"""Address checks shared by every daemon: what may become a path or a key.

A relay's accounts are `<localpart>@<mail_domain>`. Before an address is used
as a directory name it must be free of anything a filesystem interprets, fit
in one file name (255 bytes) and be UTF-8 (Redis keys are).

Edges (dict front-ends, command lines) ask `address_refusal` once and turn
its `Refused` into their own answer; stores call `check_address` again
before an address becomes a path or a key, and let its `BadAddress` (a
ValueError) propagate: reaching a store with a bad address is a bug.
"""

import re
from typing import Optional

from .failures import Refused

_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")
# An account's home is `<mailboxes_dir>/<addr>`: one file name, at most
# NAME_MAX bytes on Linux file systems (ext4, xfs, btrfs, tmpfs).
MAX_ADDRESS_BYTES = 255


class BadAddress(ValueError):
    """Not an address of this relay; str() says why (without echoing it)."""


class ForeignDomain(BadAddress):
    """A well-formed address of another domain."""


def check_address(addr: str, mail_domain: str) -> str:
    """Return `addr` if it is a safe address of `mail_domain`, else raise BadAddress."""
    localpart, at, domain = addr.rpartition("@")
    if not at or not localpart:
        raise BadAddress("not an e-mail address")
    if domain != mail_domain:
        raise ForeignDomain("domain is not ours")
    try:
        # strict: a surrogate is a byte that was not UTF-8 on the wire
        size = len(addr.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadAddress("not UTF-8") from None
    if size > MAX_ADDRESS_BYTES:
        raise BadAddress("too long for a mailbox name")
    if _UNSAFE.search(addr) or localpart.startswith(".") or ".." in localpart:
        raise BadAddress("characters not allowed in a mailbox name")
    if "@" in localpart:
        raise BadAddress("more than one @")
    return addr


def address_refusal(addr: str, mail_domain: str) -> Optional[Refused]:
    """None for a safe address of `mail_domain`, else why not: reason
    `foreign_domain` or `bad_address`, the text without the address."""
    try:
        check_address(addr, mail_domain)
    except ForeignDomain as e:
        return Refused("foreign_domain", str(e))
    except BadAddress as e:
        return Refused("bad_address", str(e))
    return None
