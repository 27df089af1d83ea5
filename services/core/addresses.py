"""Address checks shared by every daemon: what may become a path or a key.

A relay's accounts are `<localpart>@<mail_domain>`. Before an address is used
as a directory name it must be free of anything a filesystem interprets.
"""

import re

_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


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
    if _UNSAFE.search(addr) or localpart.startswith(".") or ".." in localpart:
        raise BadAddress("characters not allowed in a mailbox name")
    if "@" in localpart:
        raise BadAddress("more than one @")
    return addr
