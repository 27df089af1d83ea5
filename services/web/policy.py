"""The web front's decisions: who gets a fresh account from `/new`, and how often.

`NewAccounts.create(token)` makes one account: a random localpart of
`doveauth.username_max_length` characters of [a-z0-9] and a long random
password, admitted by core's `Admission` (the same rules as create-on-login),
in the `invite` mode only after one use of a valid invite was counted.
The account is created in the store at once, hashed and flagged like a
create-on-login account, so the credentials work even if the mode changes
before the first login. Blocking: the front runs it in its thread pool.

`Throttle` limits `/new` per client address (GCRA, core/gcra.py). Client
addresses live only in its memory (IPv6 by /64, the smallest block a client
usually has), for at most `burst / per_minute` minutes after the last request.
"""

import ipaddress
import secrets
import string
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ..core.admission import Refusal, hash_password
from ..core.failures import Refused
from ..core.gcra import RateLimiter
from ..core.store.registration import InviteUse, token_hash

ALPHABET = string.ascii_lowercase + string.digits
PASSWORD_LENGTH = 32
MAX_TOKEN_LENGTH = 128
# A resource guard's refusal means "later", not "no" (HTTP 503, not 403).
BUSY = frozenset({Refusal.HIGH_LOAD, Refusal.LOW_MEMORY, Refusal.LOW_DISK})

_TEXTS = {
    Refusal.REGISTRATION_CLOSED.value: "This relay does not accept new accounts.",
    Refusal.INVITE_ONLY.value: "This relay is invite-only: join with an invite code.",
    InviteUse.UNKNOWN.value: "This invite is not valid.",
    InviteUse.EXPIRED.value: "This invite has expired.",
    InviteUse.USED_UP.value: "This invite has been used up.",
    "busy": "The relay is busy; please try again later.",
}


def refused(reason: str) -> Refused:
    return Refused(reason, _TEXTS.get(reason, "No account can be created now."))


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str


class NewAccounts:
    def __init__(self, config, store, registration, admission,
                 hasher: Callable[[str], str] = hash_password,
                 clock: Callable[[], float] = time.time):
        self.config, self.store, self.registration = config, store, registration
        self.admission, self.hasher, self.clock = admission, hasher, clock

    def credentials(self) -> Credentials:
        length = self.config.doveauth.username_max_length
        localpart = "".join(secrets.choice(ALPHABET) for _ in range(length))
        size = max(PASSWORD_LENGTH, self.config.doveauth.password_min_length)
        password = "".join(secrets.choice(ALPHABET) for _ in range(size))
        return Credentials(f"{localpart}@{self.config.mail_domain}", password)

    def create(self, token: Optional[str]):
        """Credentials of a new account, or a `Refused` (reason: a Refusal's or
        an InviteUse's value, or "busy"). Raises StoreError when the store fails."""
        creds = self.credentials()
        refusal = self.admission.check(creds.email, creds.password, invited=token is not None)
        if refusal is not None:
            return refused("busy" if refusal in BUSY else refusal.value)
        hashed = None
        if token is not None and self.registration.get_mode() == "invite":
            hashed = token_hash(token)
            use = self.registration.use_invite(hashed, self.clock())
            if use is not InviteUse.OK:
                return refused(use.value)
        try:
            return self._store(creds)
        except BaseException:
            if hashed is not None:
                self.registration.return_invite(hashed)
            raise

    def _store(self, creds: Credentials) -> Credentials:
        for _ in range(3):  # a random address taken already: practically never
            password_hash = self.hasher(creds.password)
            if self.store.create_account(creds.email, password_hash, self.clock()) == \
                    password_hash:
                return creds
            creds = Credentials(self.credentials().email, creds.password)
        raise RuntimeError("no free random address after 3 tries")


def client_key(address: str) -> str:
    """The throttle's key of a client address: itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Throttle:
    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.limiter = RateLimiter(per_minute, burst)
        self.clock = clock

    def check(self, address: str) -> float:
        """0.0 when the client may go on, else the seconds until it may retry."""
        allowed, retry = self.limiter.check(client_key(address), self.clock())
        return 0.0 if allowed else retry
