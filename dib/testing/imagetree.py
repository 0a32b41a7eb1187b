"""A built image's tree as expectations read it: a directory, or the image's
tar read in place.

Reading the tar in place costs one pass over its headers; extracting it (and
removing the copy) cost 3-15 s a case. Symlinks are followed inside the
image, as the image itself would follow them (``/lib`` of a merged-/usr tree
is ``usr/lib``; an absolute link names a path of the image, not of the host).
"""
from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path
from typing import Protocol

from dib.sbom.rootfs import resolve, resolve_links


class ImageTree(Protocol):
    """What expectations ask of a tree; paths are inside the image."""

    def lexists(self, path: str) -> bool: ...

    def is_file(self, path: str) -> bool: ...

    def read_text(self, path: str) -> str | None: ...

    def lmode(self, path: str) -> int | None: ...


class DirectoryTree:
    """A tree on disk (a kept workspace, an extracted image)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _resolved(self, path: str, follow_last: bool) -> Path | None:
        relative = resolve(self.root, path, follow_last)
        return None if relative is None else self.root / relative

    def lexists(self, path: str) -> bool:
        target = self._resolved(path, follow_last=False)
        return target is not None and os.path.lexists(target)

    def is_file(self, path: str) -> bool:
        target = self._resolved(path, follow_last=True)
        return target is not None and target.is_file()

    def read_text(self, path: str) -> str | None:
        target = self._resolved(path, follow_last=True)
        if target is None or not target.is_file():
            return None
        return target.read_text(errors="replace")

    def lmode(self, path: str) -> int | None:
        target = self._resolved(path, follow_last=False)
        if target is None or not os.path.lexists(target):
            return None
        return stat.S_IMODE(target.lstat().st_mode)


def _member_path(name: str) -> str:
    return os.path.normpath("/" + name).lstrip("/")


class TarTree:
    """An uncompressed image tar, its members indexed by path (the last
    member of a path wins, as extracting would leave it). Use as a context
    manager, or call ``close``."""

    def __init__(self, tar_path: str | os.PathLike) -> None:
        self._tar = tarfile.open(tar_path, "r:")
        try:
            self.members = {_member_path(m.name): m for m in self._tar}
        except BaseException:
            self._tar.close()
            raise

    def __enter__(self) -> "TarTree":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._tar.close()

    def _link_target(self, path: str) -> str | None:
        member = self.members.get(path)
        return member.linkname if member is not None and member.issym() else None

    def _member(self, path: str, follow_last: bool) -> tarfile.TarInfo | None:
        relative = resolve_links(path, self._link_target, follow_last)
        if relative is None:
            return None
        member = self.members.get(relative)
        if member is not None and member.islnk():
            # a hard link's data is the member it names
            return self.members.get(_member_path(member.linkname))
        return member

    def lexists(self, path: str) -> bool:
        relative = resolve_links(path, self._link_target, follow_last=False)
        return relative is not None and (relative == "" or relative in self.members)

    def is_file(self, path: str) -> bool:
        member = self._member(path, follow_last=True)
        return member is not None and member.isfile()

    def read_text(self, path: str) -> str | None:
        member = self._member(path, follow_last=True)
        if member is None or not member.isfile():
            return None
        handle = self._tar.extractfile(member)
        return None if handle is None else handle.read().decode(errors="replace")

    def lmode(self, path: str) -> int | None:
        relative = resolve_links(path, self._link_target, follow_last=False)
        member = self.members.get(relative) if relative is not None else None
        return None if member is None else stat.S_IMODE(member.mode)
