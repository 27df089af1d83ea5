"""Who may get a new account now: the admission rules every front-end shares.

doveauth (create-on-login) and the web front (`/new`) both ask `Admission`
before creating an account, so the rules are one: the localpart and password
shape of the `doveauth` section, the host's legacy switch file
(`doveauth.nocreate_file`), the relay's registration mode (store role
`Registration`) and the machine's resources. Refusals are values.

The mode decides by front-end: `closed` refuses everyone, `invite` refuses
create-on-login (`invited=False`) and admits only a caller that holds a valid
invite (`invited=True`, the web front after counting the token's use).
Synchronous and blocking (files, Redis): callers run it in a thread pool.
"""

import enum
import os
import re
from pathlib import Path
from typing import Optional

# Front-ends take the hasher from here with the rules (core/passhash.py).
from .passhash import hash_password  # noqa: F401

_LOCALPART = re.compile(r"^[a-z0-9._-]+$")
# passlib's own limit (passlib.exc.PasswordSizeError beyond it); longer would
# also make every login of the account hash that much more.
MAX_PASSWORD_BYTES = 4096
# NUL ends a C string (passlib refuses it); a surrogate is a byte that was
# not UTF-8 on the wire (core/dictcodec.py keeps it as one): neither can be
# hashed, so neither can become an account's password.
_NOT_IN_PASSWORD = re.compile("[\x00\ud800-\udfff]")


class Refusal(enum.Enum):
    """Why a login or an account creation was refused (also the metrics label)."""

    BAD_ADDRESS = "bad_address"
    FOREIGN_DOMAIN = "foreign_domain"
    LOCALPART_LENGTH = "localpart_length"
    LOCALPART_CHARS = "localpart_chars"
    PASSWORD_LENGTH = "password_length"
    PASSWORD_CHARS = "password_chars"
    REGISTRATION_CLOSED = "registration_closed"
    INVITE_ONLY = "invite_only"
    HIGH_LOAD = "high_load"
    LOW_MEMORY = "low_memory"
    LOW_DISK = "low_disk"
    ACCOUNT_DAMAGED = "account_damaged"


def password_refusal(password: str, min_length: int) -> Optional[Refusal]:
    """Why `password` cannot become an account's password, or None."""
    if _NOT_IN_PASSWORD.search(password):
        return Refusal.PASSWORD_CHARS
    if len(password) < min_length or len(password.encode()) > MAX_PASSWORD_BYTES:
        return Refusal.PASSWORD_LENGTH
    return None


class ResourceProbe:
    """The machine's state, read fresh on each account creation."""

    def __init__(self, mailboxes_dir):
        self.mailboxes_dir = Path(mailboxes_dir)

    def load_1m(self) -> float:
        return os.getloadavg()[0]

    def available_memory(self) -> int:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
        return 0

    def free_disk(self) -> int:
        path = self.mailboxes_dir
        while not path.exists() and path != path.parent:
            path = path.parent
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize


class Admission:
    """The admission rules of one relay; `registration` may be None (always open)."""

    def __init__(self, config, registration=None, probe: Optional[ResourceProbe] = None):
        self.policy = config.doveauth
        self.registration = registration
        self.probe = probe or ResourceProbe(config.mailboxes_dir)

    def check(self, addr: str, password: str, invited: bool = False) -> Optional[Refusal]:
        """Why a new account may not be created now, or None. Cheapest checks first."""
        localpart = addr.rpartition("@")[0]
        p = self.policy
        if not p.username_min_length <= len(localpart) <= p.username_max_length:
            return Refusal.LOCALPART_LENGTH
        if not _LOCALPART.match(localpart):
            return Refusal.LOCALPART_CHARS
        return (password_refusal(password, p.password_min_length)
                or self.mode_refusal(invited) or self._resources())

    def mode_refusal(self, invited: bool = False) -> Optional[Refusal]:
        """The switch file and the registration mode's answer (may raise StoreError)."""
        if os.path.exists(self.policy.nocreate_file):
            return Refusal.REGISTRATION_CLOSED
        mode = self.registration.get_mode() if self.registration is not None else "open"
        if mode == "closed":
            return Refusal.REGISTRATION_CLOSED
        if mode == "invite" and not invited:
            return Refusal.INVITE_ONLY
        return None

    def _resources(self) -> Optional[Refusal]:
        p = self.policy
        if self.probe.load_1m() > p.max_load_1m:
            return Refusal.HIGH_LOAD
        if self.probe.available_memory() < p.min_available_memory:
            return Refusal.LOW_MEMORY
        if self.probe.free_disk() < p.min_free_disk_space:
            return Refusal.LOW_DISK
        return None
