"""Storing identical files of different cache entries once.

    CACHE/objects/SHA256-META   one hard link to each file some entry shares;
                                SHA256 is the content digest, META a digest of
                                mode, owner, mtime and xattrs

Sharing is done by pruning, and only when the cache is over its cap
(``CacheStore.share_files``): it reads every file, which a cache with room
to spare need not pay for. Each file of an entry not shared yet that matches
an object in content and in every bit of metadata is replaced by a hard link
to it. A hard link shares the inode, so only files whose whole metadata
agrees are merged, and a stored file's metadata is never changed. Layers are
only ever mounted read-only, and an entry is shared only while no build has
it mounted, so a shared inode is never written through.

Two rules keep the images the same as without sharing: a file that already
has other links inside its layer is left alone (its own links stay as they
were), and no two paths a build sees at once (one layer and the layers below
and above it) are given the same inode, because mkfs and tar turn an inode
seen under two names into a hard link in the image.

Objects are created with ``link()``, which fails rather than replaces. An
object whose link count is 1 is used by no entry and is removed by
``collect``; if a sharer linked it just then, the data stays with that entry
and only the index loses it.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Iterable


# An empty file holds no blocks, so sharing it saves nothing. Anything
# larger is worth it: a small file still fills a whole block, while its
# index link costs a directory entry, and hashing a 600 MB install layer
# took the same time with or without its small files.
MIN_SIZE = 1


def object_name(path: str, st: os.stat_result) -> str | None:
    """The index name of a regular file: its content and metadata; None
    when some of its metadata cannot be read (it is then never merged)."""
    xattrs = _xattrs(path)
    if xattrs is None:
        return None
    content = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            content.update(chunk)
    meta = hashlib.sha256(f"{st.st_mode}\0{st.st_uid}\0{st.st_gid}\0{st.st_size}\0"
                          f"{st.st_mtime_ns}\0".encode())
    for name, value in xattrs:
        meta.update(name.encode() + b"\0" + value + b"\0")
    return f"{content.hexdigest()}-{meta.hexdigest()[:32]}"


def _xattrs(path: str) -> list[tuple[str, bytes]] | None:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []   # a filesystem without xattrs: there are none to compare
    found = []
    for name in sorted(names):
        try:
            found.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            return None     # unreadable to us (trusted.* without root)
    return found


def _regular_files(root: Path) -> list[tuple[str, os.stat_result]]:
    found = []
    for directory, _dirs, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                found.append((path, st))
    return found


def inodes_of(layer: Path) -> set[int]:
    """Inodes of the shared (multiply linked) regular files in ``layer``."""
    return {st.st_ino for _path, st in _regular_files(layer) if st.st_nlink > 1}


def share(objects: Path, layer: Path, around: set[int]) -> dict[str, int]:
    """Replace files of ``layer`` by links to identical objects, adding its
    other files as new objects. ``around`` holds the inodes of the layers
    mounted with it. Returns inode → bytes of every file of ``layer`` that
    is (or may become) shared, for counting each inode once."""
    objects.mkdir(exist_ok=True)
    shared: dict[str, int] = {}
    taken = set(around)
    # Replacing a file renames into its directory, which would stamp the
    # directory with today's time; the layer's times are part of the image.
    directory_times: dict[str, tuple[int, int]] = {}
    try:
        for path, st in _regular_files(layer):
            if st.st_nlink != 1 or st.st_size < MIN_SIZE:
                continue
            name = object_name(path, st)
            if name is None:
                continue
            parent = os.path.dirname(path)
            if parent not in directory_times:
                parent_st = os.lstat(parent)
                directory_times[parent] = (parent_st.st_atime_ns, parent_st.st_mtime_ns)
            inode = _link_to_object(path, objects / name, taken)
            if inode is not None:
                taken.add(inode[0])
                shared[str(inode[0])] = inode[1]
    finally:
        for directory, times in directory_times.items():
            os.utime(directory, ns=times, follow_symlinks=False)
    return shared


def _link_to_object(path: str, index: Path, taken: set[int]) -> tuple[int, int] | None:
    """Make ``path`` the object or a link to it; (inode, bytes) of the
    result, or None when it stays a file of its own."""
    try:
        os.link(path, index)
        st = os.lstat(path)
        return st.st_ino, st.st_blocks * 512
    except FileExistsError:
        pass
    try:
        obj = os.lstat(index)
    except OSError:
        return None
    if obj.st_ino in taken:
        return None
    replacement = f"{path}.dedup-{os.getpid()}"
    try:
        os.link(index, replacement)
    except OSError:
        return None     # collected just now; keep our own copy
    try:
        os.rename(replacement, path)
    except OSError:
        os.unlink(replacement)
        return None
    return obj.st_ino, obj.st_blocks * 512


def collect(objects: Path) -> int:
    """Remove objects no entry uses any more; returns how many."""
    removed = 0
    try:
        names = list(os.scandir(objects))
    except FileNotFoundError:
        return 0
    for item in names:
        try:
            if item.stat(follow_symlinks=False).st_nlink == 1:
                os.unlink(item.path)
                removed += 1
        except OSError:
            continue
    return removed


class Usage:
    """Bytes a set of entries holds, each shared inode counted once, kept
    up to date as entries leave it (pruning asks after every removal)."""

    def __init__(self, entries: Iterable[tuple[str, int, dict[str, int]]]) -> None:
        self._entries: dict[str, tuple[int, dict[str, int]]] = {}
        self._holders: dict[str, int] = {}
        self.total = 0
        for key, size, shared in entries:
            self.add(key, size, shared)

    def add(self, key: str, size: int, shared: dict[str, int]) -> None:
        self._entries[key] = (size, shared)
        self.total += size - sum(shared.values())
        for inode, blocks in shared.items():
            self._holders[inode] = self._holders.get(inode, 0) + 1
            if self._holders[inode] == 1:
                self.total += blocks

    def drop(self, key: str) -> None:
        size, shared = self._entries.pop(key)
        self.total -= size - sum(shared.values())
        for inode, blocks in shared.items():
            self._holders[inode] -= 1
            if self._holders[inode] == 0:
                del self._holders[inode]
                self.total -= blocks
