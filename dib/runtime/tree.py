"""The image tree as a stack of overlay layers, one per phase.

Each phase writes into a fresh upper directory over the layers below it, so
what a phase changed is a directory of its own: the cache can keep it by
renaming it, and a warm build restores it by mounting it.

This is also the one place that reads layer directories the way overlayfs
does (whiteouts, opaque directories) without mounting them.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path
from typing import Iterable

from dib import runner
from dib.runtime.mounts import CleanupStack, in_user_namespace, mount, overlay, overlay_options


class LayeredTree:
    def __init__(self, layers_dir: Path, merged: Path) -> None:
        self.layers_dir = layers_dir
        self.merged = merged
        self.layers: list[Path] = []       # bottom first
        self._open: tuple[Path, CleanupStack] | None = None
        self._count = 0
        self._base = layers_dir / "base"
        self._base.mkdir(exist_ok=True)

    def add_layer(self, path: Path) -> None:
        """Put an existing layer (a cached one) on top of the stack."""
        if self._open:
            raise RuntimeError("cannot add a layer while one is open")
        self.layers.append(path)

    def clear(self) -> None:
        """Start again from an empty stack (layer names keep counting up)."""
        if self._open:
            raise RuntimeError("cannot clear the stack while a layer is open")
        self.layers = []

    def replace_top(self, path: Path) -> None:
        """The top layer moved (the cache took it); use it from its new place."""
        self.layers[-1] = path

    def open_layer(self, name: str) -> Path:
        """Mount the stack with a new empty upper directory at ``merged``."""
        if self._open:
            raise RuntimeError("a layer is already open")
        self._count += 1
        # overlayfs splits lowerdir at ':' and its options at ',': a step
        # name (install:01-package-installs) is no directory name for it.
        upper = self.layers_dir / f"{self._count:02d}-{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}"
        work = self.layers_dir / f".work-{self._count:02d}"
        upper.mkdir()
        work.mkdir()
        cleanup = CleanupStack()
        overlay(self.layers or [self._base], upper, work, self.merged, cleanup=cleanup)
        self._open = (upper, cleanup)
        return self.merged

    def close_layer(self) -> Path:
        """Unmount; the upper directory becomes the top layer. Returns it."""
        if not self._open:
            raise RuntimeError("no layer is open")
        upper, cleanup = self._open
        self._open = None
        cleanup.unwind()
        work = self.layers_dir / f".work-{self._count:02d}"
        shutil.rmtree(work, ignore_errors=True)
        self.layers.append(upper)
        return upper

    def abort_layer(self) -> None:
        if self._open:
            self._open[1].unwind()
            self._open = None

    def mount_readonly(self, cleanup: CleanupStack) -> Path:
        """The finished tree, read-only, for outputs and mkfs."""
        lowers = self.layers or [self._base]
        if len(lowers) == 1:
            mount(str(lowers[0]), self.merged, bind=True, cleanup=cleanup)
        else:
            mount("overlay", self.merged, fstype="overlay", options=overlay_options(lowers),
                  cleanup=cleanup)
        return self.merged

    def mount_for_outputs(self, cleanup: CleanupStack) -> Path:
        """The finished tree with a throw-away upper directory, for changes
        that belong to the outputs only (clamped mtimes): metacopy copies up
        just the metadata of a file whose times change, index keeps hard
        links whole. Nothing written here reaches a layer or the cache. The
        upper directory is a tmpfs: thousands of copied-up inodes cost no
        disk writes, and unmounting throws them away at once. xino gives every
        file the overlay's device although the upper directory is on another
        filesystem: ``du -x`` and ``mkfs -d`` would skip them otherwise."""
        if in_user_namespace():
            return self._copy_for_outputs(cleanup)
        scratch = self.layers_dir / "outputs-scratch"
        scratch.mkdir(exist_ok=True)
        cleanup.push("outputs scratch directory", lambda: _remove(scratch))
        mount("tmpfs", scratch, fstype="tmpfs", options="mode=0700", cleanup=cleanup)
        upper, work = scratch / "upper", scratch / "work"
        upper.mkdir()
        work.mkdir()
        mount("overlay", self.merged, fstype="overlay",
              options=overlay_options(self.layers or [self._base], upper, work,
                                      "metacopy=on", "index=on", "xino=on"),
              cleanup=cleanup)
        return self.merged

    def _copy_for_outputs(self, cleanup: CleanupStack) -> Path:
        """``mount_for_outputs`` in a user namespace, where overlayfs has
        neither metacopy nor index: a copy-up there would copy whole files
        and split hard links. A private copy (``cp -a`` keeps hard links,
        xattrs and owners) costs less and changes nothing else."""
        copy = self.layers_dir / "outputs-copy"
        shutil.rmtree(copy, ignore_errors=True)
        with CleanupStack() as source_mount:
            source = self.mount_readonly(source_mount)
            runner.run(["cp", "-a", "--", f"{source}/.", str(copy)],
                       what="a copy of the tree for the outputs")
        cleanup.push("outputs copy", lambda: shutil.rmtree(copy, ignore_errors=True))
        return copy


def _remove(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def layer_paths(layer: Path, limit: int) -> list[str] | None:
    """Every path a layer adds, changes or deletes (a whiteout is a path
    too), relative to the tree's root; None when there are more than
    ``limit`` or the layer hides a whole directory of the layers below
    (an opaque or redirected directory), which no path list can express."""
    found: list[str] = []
    for directory, dirs, files in os.walk(layer):
        for name in dirs:
            path = os.path.join(directory, name)
            if is_opaque(path) or _overlay_attr(path, "redirect"):
                return None
        for name in dirs + files:
            found.append(os.path.relpath(os.path.join(directory, name), layer))
        if len(found) > limit:
            return None
    return sorted(found)


def path_in_layers(layers_top_first: Iterable[Path], relative: str) -> bool:
    """Whether ``relative`` exists in the tree that overlay ``layers`` make,
    read from the layer directories themselves (nothing mounted): a whiteout
    deletes it, a non-directory or an opaque directory on the way hides what
    the layers below hold."""
    parts = Path(relative.lstrip("/")).parts
    for layer in layers_top_first:
        found = _look_in_layer(Path(layer), parts)
        if found is not None:
            return found
    return False


def _look_in_layer(layer: Path, parts: tuple[str, ...]) -> bool | None:
    """True or False when this layer decides, None to look in the one below."""
    current = layer
    hides_below = False
    for depth, part in enumerate(parts):
        current = current / part
        if is_whiteout(current):
            return False
        if depth == len(parts) - 1:
            return True if os.path.lexists(current) else (False if hides_below else None)
        if not os.path.lexists(current):
            return False if hides_below else None
        if current.is_symlink() or not current.is_dir():
            return False
        hides_below = hides_below or is_opaque(current)
    return None


def is_whiteout(path: str | os.PathLike) -> bool:
    """overlayfs marks a deleted path with a 0/0 character device."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str | os.PathLike) -> bool:
    """A directory that hides the same directory of the layers below
    (``trusted.`` as root mounts it, ``user.`` in a user namespace)."""
    return _overlay_attr(path, "opaque") == b"y" or \
        _overlay_attr(path, "opaque", namespace="user") == b"y"


def _overlay_attr(path: str | os.PathLike, name: str, namespace: str = "trusted") -> bytes:
    try:
        return os.getxattr(path, f"{namespace}.overlay.{name}", follow_symlinks=False)
    except OSError:
        return b""
