"""What a host-side step writes beside the image, kept with its cache entry.

cleanup.d hooks write their results next to the output: the deploy
ramdisk's ``NAME.kernel`` and ``NAME.initramfs``, baremetal's
``NAME.vmlinuz``, the manifests' ``NAME.d/``. A step is only reusable if those
come back too, so the entry keeps a copy of every file or directory named
``NAME.*`` that the step created or changed, and a cache hit puts them back.
Copies, not hard links: a user who edits an output in place must not change
the cache.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

PRODUCTS = "products"

#: name → (size, mtime in ns) of each entry beside the image
Snapshot = dict[str, tuple[int, int]]


def _beside(image: Path) -> list[Path]:
    prefix = image.name + "."
    directory = image.parent
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith(prefix))


def _signature(path: Path) -> tuple[int, int]:
    newest = path.lstat()
    size, mtime = newest.st_size, newest.st_mtime_ns
    if path.is_dir() and not path.is_symlink():
        for directory, _dirs, names in os.walk(path):
            for name in names:
                st = os.lstat(os.path.join(directory, name))
                size += st.st_size
                mtime = max(mtime, st.st_mtime_ns)
    return size, mtime


def snapshot(image: Path) -> Snapshot:
    return {p.name: _signature(p) for p in _beside(image)}


def stage(image: Path, before: Snapshot, staging: Path) -> Path | None:
    """Copy what changed beside ``image`` since ``before`` into ``staging``;
    None when the step wrote nothing there."""
    changed = [p for p in _beside(image) if before.get(p.name) != _signature(p)]
    if not changed:
        return None
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path in changed:
        _copy(path, staging / path.name)
    return staging


def restore(saved: Path, image: Path) -> list[Path]:
    """Put a step's products back beside ``image``; returns their paths."""
    if not saved.is_dir():
        return []
    restored = []
    for source in sorted(saved.iterdir()):
        target = image.parent / source.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        _copy(source, target)
        restored.append(target)
    return restored


def _copy(source: Path, target: Path) -> None:
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target, follow_symlinks=False)
