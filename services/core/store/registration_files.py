"""The registration role on the files store: a folder beside the mailboxes.

    <mailboxes_dir>/.registration/mode                    open | invite | closed
    <mailboxes_dir>/.registration/invites/<sha256>.json   {"uses", "left", "created", "expires"}
    <mailboxes_dir>/.registration/invites/.lock           flock(2) for every change

The folder's name has no `@`, so neither the account listing nor
chatmail-expire takes it for a mailbox. Every write goes to a fsynced
temporary file that is renamed into place. A use of an invite reads, checks
and rewrites its file under an exclusive flock, so concurrent uses from any
thread or process on this host are counted exactly.

chatmailctl runs as root and the web front as the mailboxes' owner (vmail):
what root creates here is handed to the owner of `mailboxes_dir`.
"""

import fcntl
import json
import os
import pwd
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

from .base import StoreError
# the same backend's durable-write helpers (files.py)
from .files import _fsync_dir as fsync_dir, write_durable_temp
from .registration import (
    ID_LENGTH, KEEP_EXPIRED, Invite, InviteUse, Registration, check_mode,
)

FOLDER = ".registration"


class FilesRegistration(Registration):
    def __init__(self, mailboxes_dir, owner: str = "vmail"):
        self.root = Path(mailboxes_dir)
        self.dir = self.root / FOLDER
        self.invites = self.dir / "invites"
        self.owner = owner  # who gets a mailboxes_dir that root had to create

    @classmethod
    def from_config(cls, config) -> "FilesRegistration":
        return cls(config.mailboxes_dir, config.doveauth.uid)

    # -- files -------------------------------------------------------------
    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            st = self.root.stat()
            os.chown(path, st.st_uid, st.st_gid)

    def _folders(self) -> None:
        if not self.root.is_dir():
            # root (chatmailctl) must not leave a mailboxes_dir the daemons cannot write
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            if os.geteuid() == 0:
                try:
                    user = pwd.getpwnam(self.owner)
                    os.chown(self.root, user.pw_uid, user.pw_gid)
                except KeyError:
                    pass
        for folder in (self.dir, self.invites):
            if not folder.is_dir():
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._own(folder)

    def _write(self, path: Path, data: bytes) -> None:
        tmp = write_durable_temp(path.parent, data)
        self._own(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)

    @contextmanager
    def _locked(self):
        try:
            self._folders()
            lock = self.invites / ".lock"
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StoreError(f"registration folder: {e.strerror}") from None
        try:
            self._own(lock)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        except OSError as e:
            raise StoreError(f"registration folder: {e.strerror}") from None
        finally:
            os.close(fd)

    def _path(self, hashed: str) -> Path:
        if len(hashed) != 64 or any(c not in "0123456789abcdef" for c in hashed):
            raise ValueError("not a token hash")
        return self.invites / f"{hashed}.json"

    def _read(self, path: Path) -> Optional[dict]:
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise StoreError(f"invite unreadable: {getattr(e, 'strerror', None) or e}") from None

    # -- the mode ----------------------------------------------------------
    def get_mode(self) -> str:
        try:
            text = (self.dir / "mode").read_text("ascii").strip()
        except FileNotFoundError:
            return "open"
        except (OSError, UnicodeDecodeError) as e:
            raise StoreError(f"registration mode unreadable: {e}") from None
        # An unknown word (an operator's typo) must not open the relay.
        return text if text in ("open", "invite") else "closed"

    def set_mode(self, mode: str) -> None:
        check_mode(mode)
        try:
            self._folders()
            self._write(self.dir / "mode", f"{mode}\n".encode("ascii"))
        except OSError as e:
            raise StoreError(f"cannot set the registration mode: {e.strerror}") from None

    # -- invites -----------------------------------------------------------
    def add_invite(self, hashed: str, uses: int, created: float, expires: float) -> Invite:
        record = {"uses": uses, "left": uses, "created": created, "expires": expires}
        with self._locked():
            self._write(self._path(hashed), json.dumps(record).encode())
        return _invite(hashed, record)

    def list_invites(self, now: float) -> List[Invite]:
        try:
            names = [n for n in os.listdir(self.invites) if n.endswith(".json")]
        except FileNotFoundError:
            return []
        except OSError as e:
            raise StoreError(f"registration folder: {e.strerror}") from None
        found = [(name[:-5], self._read(self.invites / name)) for name in names]
        for hashed, record in found:
            if record is not None and now >= record["expires"] + KEEP_EXPIRED:
                (self.invites / f"{hashed}.json").unlink(missing_ok=True)
        return sorted((_invite(h, r) for h, r in found
                       if r is not None and now < r["expires"] + KEEP_EXPIRED),
                      key=lambda i: i.created)

    def revoke_invite(self, invite_id: str) -> bool:
        if len(invite_id) != ID_LENGTH or any(c not in "0123456789abcdef" for c in invite_id):
            return False
        with self._locked():
            paths = list(self.invites.glob(f"{invite_id}*.json"))
            for path in paths:
                path.unlink()
        return bool(paths)

    def use_invite(self, hashed: str, now: float) -> InviteUse:
        path = self._path(hashed)
        with self._locked():
            record = self._read(path)
            if record is None:
                return InviteUse.UNKNOWN
            if now >= record["expires"]:
                return InviteUse.EXPIRED
            if record["left"] <= 0:
                return InviteUse.USED_UP
            record["left"] -= 1
            self._write(path, json.dumps(record).encode())
        return InviteUse.OK

    def return_invite(self, hashed: str) -> None:
        path = self._path(hashed)
        with self._locked():
            record = self._read(path)
            if record is not None and record["left"] < record["uses"]:
                record["left"] += 1
                self._write(path, json.dumps(record).encode())

    def close(self) -> None:
        pass


def _invite(hashed: str, record: dict) -> Invite:
    return Invite(hashed[:ID_LENGTH], record["uses"], record["left"],
                  record["created"], record["expires"])
