"""What a build asked to be reproducible (SOURCE_DATE_EPOCH) does to its tree.

``settle_tree`` removes, before the SBOM reads the tree, the files that only
ever hold this machine's state at build time. Every mtime newer than
SOURCE_DATE_EPOCH must come down to it in the outputs: tar clamps them
itself, a disk's filesystems are given them after mkfs (``late_paths`` says
which), and for any other output ``clamp_mtimes`` changes them on the copy
of the tree it is made from (see ``LayeredTree.mount_for_outputs``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Collection

#: files whose contents are this build's moment or randomness, and that the
#: system makes again when they are missing
STATE_FILES = (
    # ldconfig's record of every library's inode and ctime, a cache only
    "var/cache/ldconfig/aux-cache",
    # entropy saved by systemd-random-seed and the older urandom script
    "var/lib/systemd/random-seed",
    "var/lib/urandom/random-seed",
)


def settle_tree(tree: Path) -> list[str]:
    """Remove the STATE_FILES the tree holds; returns those removed."""
    removed = []
    for relative in STATE_FILES:
        path = tree / relative
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(relative)
    return removed


def clamp_mtimes(tree: Path, epoch: int) -> int:
    """Set every mtime later than ``epoch`` to ``epoch`` (symlinks themselves,
    never what they point to; the tree's root too). Returns how many changed.
    A directory is done after what it holds: changing a file inside it
    would not move its mtime, but the order keeps that true for any tree."""
    changed = 0
    for directory, dirs, files in os.walk(tree, topdown=False):
        for name in files + dirs:
            changed += _clamp(os.path.join(directory, name), epoch)
    return changed + _clamp(str(tree), epoch)


def late_paths(tree: Path, epoch: int, keep_out: Collection[str] = ()) -> list[str]:
    """The paths under ``tree`` (relative to it; "" for the tree itself)
    whose mtime is later than ``epoch``, read without changing anything.
    The directories in ``keep_out`` (relative paths) are listed themselves
    when late, but not what they hold."""
    late = [""] if os.lstat(tree).st_mtime > epoch else []
    skipped = {os.path.join(str(tree), p.strip("/")) for p in keep_out}
    for directory, dirs, files in os.walk(tree):
        prefix = os.path.relpath(directory, tree)
        for name in files + dirs:
            path = os.path.join(directory, name)
            if os.lstat(path).st_mtime > epoch:
                late.append(name if prefix == "." else os.path.join(prefix, name))
        dirs[:] = [d for d in dirs if os.path.join(directory, d) not in skipped]
    return late


def _clamp(path: str, epoch: int) -> int:
    st = os.lstat(path)
    if st.st_mtime <= epoch:
        return 0
    atime = min(st.st_atime_ns, epoch * 1_000_000_000)
    os.utime(path, ns=(atime, epoch * 1_000_000_000), follow_symlinks=False)
    return 1
