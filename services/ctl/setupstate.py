"""What `chatmailctl setup` changed in a filesystem tree, and how to undo it.

Every file setup writes is recorded in a manifest under
<root>/var/lib/chatmail-services/setup/: either `created` (undo removes it)
or `replaced` (its content before the first setup is kept under backup/,
undo puts it back). A later setup never overwrites that backup, so undo
always returns to the files as they were before setup first ran.
"""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = "var/lib/chatmail-services/setup"


@dataclass(frozen=True)
class Wanted:
    """One file as setup wants it: path relative to the root, content, mode, owner."""

    path: str
    content: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"


class Tree:
    def __init__(self, root):
        self.root = Path(root)
        self.state = self.root / STATE_DIR
        self.manifest_path = self.state / "manifest.json"

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def read(self, rel: str):
        """The file's bytes, or None when it does not exist."""
        try:
            return self.path(rel).read_bytes()
        except FileNotFoundError:
            return None

    def manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {}
        return json.loads(self.manifest_path.read_text())

    def differs(self, wanted: Wanted) -> bool:
        path = self.path(wanted.path)
        if self.read(wanted.path) != wanted.content:
            return True
        st = path.stat()
        return (st.st_mode & 0o7777 != wanted.mode
                or (st.st_uid, st.st_gid) != _ids(wanted.owner, wanted.group))

    def apply(self, changes) -> None:
        """Write each Wanted, recording what it replaces first."""
        manifest = self.manifest()
        for wanted in changes:
            for directory in self._missing_parents(wanted.path):
                manifest[directory] = "directory"
            if wanted.path not in manifest:
                manifest[wanted.path] = self._remember(wanted.path)
            self._save(manifest)
            write_atomically(self.path(wanted.path), wanted.content, wanted.mode,
                             _ids(wanted.owner, wanted.group))

    def _missing_parents(self, rel: str) -> list:
        parents = Path(rel.lstrip("/")).parents
        return [str(d) for d in reversed(parents) if str(d) != "."
                and not self.path(str(d)).exists()]

    def _remember(self, rel: str) -> str:
        original = self.path(rel)
        if not original.exists():
            return "created"
        backup = self.state / "backup" / rel.lstrip("/")
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(original, backup)
        st = original.stat()
        os.chown(backup, st.st_uid, st.st_gid)
        return "replaced"

    def _save(self, manifest: dict) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o700)
        write_atomically(self.manifest_path, json.dumps(manifest, indent=1).encode(), 0o600)

    def undo(self) -> list:
        """Restore every recorded file; returns the paths touched."""
        manifest = self.manifest()
        for rel, how in manifest.items():
            target = self.path(rel)
            if how == "directory":
                continue
            if how == "created":
                target.unlink(missing_ok=True)
            else:
                backup = self.state / "backup" / rel.lstrip("/")
                shutil.copy2(backup, target)
                st = backup.stat()
                os.chown(target, st.st_uid, st.st_gid)
        made = sorted((rel for rel, how in manifest.items() if how == "directory"),
                      key=len, reverse=True)
        for rel in made:  # drop-in directories setup made, deepest first
            if self.path(rel).is_dir() and not any(self.path(rel).iterdir()):
                self.path(rel).rmdir()
        shutil.rmtree(self.state, ignore_errors=True)
        return sorted(rel for rel, how in manifest.items() if how != "directory")


def write_atomically(path: Path, content: bytes, mode: int, ids=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(tmp, mode)
        if ids is not None:
            os.chown(tmp, *ids)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _ids(owner: str, group: str):
    import grp
    import pwd

    return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
