"""The registration role: the relay's one registration mode and its invites.

The mode (`open`, `invite`, `closed`) is one switch for the whole relay:
doveauth reads it before creating an account on first login, the web front
before `/new`, chatmailctl sets it. With the Redis store every host sees the
same mode and the same invites.

An invite is a long random token (`new_token()`, 192 bits) that creates up to
`uses` accounts until `expires`. Stores keep only its SHA-256 (`token_hash`),
never the token: a copy of the store cannot be used to join. An invite's
`id` (the first 16 hex digits of the hash) names it in listings and to revoke
it; the token itself is shown once, when it is created.

`use_invite` counts one use atomically across threads, processes and hosts:
of two simultaneous uses of a one-use invite exactly one is OK. Methods are
synchronous and may block (disk, network), like the rest of the store.
"""

import abc
import enum
import hashlib
import secrets
from dataclasses import dataclass
from typing import List

MODES = ("open", "invite", "closed")
ID_LENGTH = 16


class InviteUse(enum.Enum):
    """The answer to one use of a token (also the metrics label)."""

    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED_UP = "used_up"


@dataclass(frozen=True)
class Invite:
    id: str
    uses: int
    uses_left: int
    created: float
    expires: float


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"registration mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


class Registration(abc.ABC):
    @abc.abstractmethod
    def get_mode(self) -> str:
        """`open` (also when never set), `invite` or `closed`."""

    @abc.abstractmethod
    def set_mode(self, mode: str) -> None:
        """Switch the relay's mode (one of MODES)."""

    @abc.abstractmethod
    def add_invite(self, hashed: str, uses: int, created: float, expires: float) -> Invite:
        """Store a new invite under the SHA-256 of its token."""

    @abc.abstractmethod
    def list_invites(self, now: float) -> List[Invite]:
        """Every invite, oldest first; one expired for longer than KEEP_EXPIRED
        is forgotten (listed no more, its token then answers UNKNOWN)."""

    @abc.abstractmethod
    def revoke_invite(self, invite_id: str) -> bool:
        """Delete the invite whose id is `invite_id`; False if there is none."""

    @abc.abstractmethod
    def use_invite(self, hashed: str, now: float) -> InviteUse:
        """Count one use of the invite, atomically; anything but OK changes nothing."""

    @abc.abstractmethod
    def return_invite(self, hashed: str) -> None:
        """Give back one use (the account it was counted for was not created)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and handles."""


# Expired invites stay listable (and answer EXPIRED, not UNKNOWN) this long.
KEEP_EXPIRED = 7 * 86400


def open_registration(config) -> Registration:
    """The registration role of the configured store (Redis imported only when used)."""
    if config.storage == "files":
        from .registration_files import FilesRegistration

        return FilesRegistration.from_config(config)
    from .registration_redis import RedisRegistration

    return RedisRegistration.from_config(config)
