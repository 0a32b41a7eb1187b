"""The per-build workspace: one directory holding everything a build writes."""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dib.errors import DibError
from dib.runtime.mounts import mounts_under, umount
from dib.runtime.userns import remove_tree

LOG = logging.getLogger(__name__)
PREFIX = "dib-build-"
OWNER_FILE = "owner.pid"
KEPT_FILE = "kept"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def hooks(self) -> Path:
        """TMP_HOOKS_PATH: every element's hooks merged, read-only in the chroot."""
        return self.root / "hooks"

    @property
    def tree(self) -> Path:
        """TMP_MOUNT_PATH / TARGET_ROOT: where the image's tree is mounted."""
        return self.root / "mnt"

    @property
    def host_bin(self) -> Path:
        """dib's own commands put first on host phases' PATH (runtime/hostshims.py)."""
        return self.root / "host-bin"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def image_dir(self) -> Path:
        """TMP_IMAGE_DIR: disk images being assembled."""
        return self.root / "image"

    @classmethod
    def create(cls, workdir: str | Path) -> "Workspace":
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        remove_stale(workdir)
        root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=workdir))
        os.chmod(root, 0o755)
        (root / OWNER_FILE).write_text(f"{os.getpid()}\n")
        ws = cls(root)
        for directory in (ws.hooks, ws.tree, ws.layers, ws.image_dir):
            directory.mkdir()
        return ws

    def claim(self) -> None:
        """The process now responsible for this workspace (after a re-exec)."""
        (self.root / OWNER_FILE).write_text(f"{os.getpid()}\n")

    def keep(self) -> None:
        """Leave this workspace for the user (--keep-workspace): never stale."""
        (self.root / KEPT_FILE).touch()

    def remove(self) -> None:
        for point in mounts_under(self.root):
            umount(Path(point))
        left = mounts_under(self.root)
        if left:
            raise DibError(f"cannot remove workspace {self.root}: still mounted: "
                           f"{', '.join(left)}")
        remove_tree(self.root)


def _owner_alive(root: Path) -> bool:
    try:
        pid = int((root / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(workdir: Path) -> None:
    """Workspaces whose build was killed outright (SIGKILL) are removed by the next build."""
    for candidate in workdir.glob(PREFIX + "*"):
        if (candidate.is_dir() and not (candidate / KEPT_FILE).exists()
                and not _owner_alive(candidate) and not mounts_under(candidate)):
            LOG.info("removing the workspace of a build that was killed: %s", candidate)
            remove_tree(candidate)
