"""Mounts, and the one cleanup registry that undoes them in reverse.

Everything here runs inside the build's private mount namespace, so even a
mount this code forgets dies with the namespace; the registry exists so that
a finished phase leaves a clean tree behind, not to protect the host.
"""
from __future__ import annotations

import functools
import logging
import os
import stat
from pathlib import Path
from typing import Callable

from dib import runner
from dib.runtime import devnodes

LOG = logging.getLogger(__name__)


class CleanupStack:
    """Undo actions registered as resources are acquired, run last-first."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, action: Callable[[], None]) -> None:
        self._actions.append((what, action))

    def unwind(self) -> list[str]:
        """Run every action; return descriptions of those that failed."""
        failures = []
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except Exception as exc:  # keep unwinding: one stuck mount must not leak others
                LOG.warning("cleanup of %s failed: %s", what, exc)
                failures.append(what)
        return failures

    def __enter__(self) -> "CleanupStack":
        return self

    def __exit__(self, *exc) -> None:
        self.unwind()


def mount(source: str, target: Path, *, fstype: str | None = None,
          options: str | None = None, bind: bool = False, cleanup: CleanupStack) -> None:
    argv = ["mount"]
    if bind:
        argv.append("--bind")
    if fstype:
        argv += ["-t", fstype]
    if options:
        argv += ["-o", options]
    argv += [source, str(target)]
    runner.run(argv, what=f"mounting {target}")
    cleanup.push(f"mount {target}", lambda: umount(target))


def bind_readonly(source: Path, target: Path, *, cleanup: CleanupStack) -> None:
    mount(str(source), target, bind=True, cleanup=cleanup)
    runner.run(["mount", "-o", "remount,bind,ro", str(target)],
               what=f"making {target} read-only")


def rbind_readonly(source: Path, target: Path, *, cleanup: CleanupStack) -> None:
    """Bind ``source`` with the mounts below it (in a user namespace the
    kernel refuses a bind that would leave them out), the top read-only."""
    runner.run(["mount", "--rbind", str(source), str(target)], what=f"mounting {target}")
    cleanup.push(f"mount {target}", lambda: umount(target, recursive=True))
    runner.run(["mount", "-o", "remount,bind,ro", str(target)],
               what=f"making {target} read-only")


@functools.cache
def in_user_namespace() -> bool:
    """True in a user namespace of our own (a build without root). The kernel
    then refuses what only the host's root may do: mknod, a new proc without
    a PID namespace, a new sysfs without a network namespace, trusted.*
    xattrs (which overlayfs keeps its own data in unless told ``userxattr``)."""
    try:
        with open("/proc/self/uid_map") as handle:
            return handle.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def id_mapping() -> str | None:
    """This process's uid and gid maps as one line (``uids 0:1000:1 1:100000:65536;
    gids ...``: inside, host, count), or None in the host's user namespace.
    Files a build writes belong on disk to the host ids, so a cache entry is
    only the same tree for a build with the same mapping."""
    if not in_user_namespace():
        return None
    parts = []
    for kind in ("uid", "gid"):
        with open(f"/proc/self/{kind}_map") as handle:
            extents = [":".join(line.split()) for line in handle if line.strip()]
        parts.append(f"{kind}s " + " ".join(extents))
    return "; ".join(parts)


def overlay_options(lowers: list[Path], upper: Path | None = None, work: Path | None = None,
                    *extra: str) -> str:
    """overlayfs options; ``lowers`` are given bottom first. In a user
    namespace overlayfs keeps whiteouts' and copy-ups' data in user.overlay.*
    xattrs: without them it cannot rename a directory of a lower layer
    (dpkg does) and would show the layers' own xattrs in the tree."""
    options = ["lowerdir=" + ":".join(str(p) for p in reversed(lowers))]
    if upper is not None and work is not None:
        options += [f"upperdir={upper}", f"workdir={work}"]
    if in_user_namespace():
        options.append("userxattr")
    return ",".join([*options, *extra])


def umount(target: Path, *, recursive: bool = False) -> None:
    result = runner.run(["umount", *(["--recursive"] if recursive else []), str(target)],
                        check=False)
    if not result.ok:
        # A process that still holds the mount (a daemon a hook started) must
        # not keep the tree pinned: detach it; the namespace ends it anyway.
        runner.run(["umount", "--lazy", str(target)], what=f"unmounting {target}")


#: The bootstrap's character devices a chroot's hooks get; not its console
#: (hooks have no terminal of their own) nor its ptmx, which is a link to
#: the private devpts's here.
CHROOT_DEVICES = tuple(node for node in devnodes.BOOTSTRAP
                       if node.kind == devnodes.CHAR and node.name not in ("console", "ptmx"))


def minimal_dev(tree: Path, *, cleanup: CleanupStack) -> None:
    """A /dev of its own for the chroot: a few character devices and a private
    devpts, never the host's /dev (whose nodes would end up in the image)."""
    dev = tree / "dev"
    dev.mkdir(exist_ok=True)
    mount("tmpfs", dev, fstype="tmpfs", options="mode=0755,nosuid,size=16m", cleanup=cleanup)
    for node in CHROOT_DEVICES:
        if in_user_namespace():
            # mknod needs the host's root; the host's nodes are the same
            # devices, bound onto files of this tmpfs that goes with it.
            (dev / node.name).touch()
            mount(f"/dev/{node.name}", dev / node.name, bind=True, cleanup=cleanup)
            continue
        os.mknod(dev / node.name, stat.S_IFCHR | node.mode, os.makedev(node.major, node.minor))
        os.chmod(dev / node.name, node.mode)
    links = [(n.name, n.target) for n in devnodes.BOOTSTRAP if n.kind == devnodes.LINK]
    for name, target in links + [("ptmx", "pts/ptmx")]:
        os.symlink(target, dev / name)
    (dev / "pts").mkdir()
    (dev / "shm").mkdir(mode=0o1777)
    os.chmod(dev / "shm", 0o1777)
    mount("devpts", dev / "pts", fstype="devpts",
          options="newinstance,ptmxmode=0666,mode=0620,gid=5", cleanup=cleanup)


def chroot_mounts(tree: Path, *, cleanup: CleanupStack) -> None:
    """proc, a read-only sysfs (as DIB: tools then know they are in a container)
    and a minimal /dev."""
    for name in ("proc", "sys", "dev"):
        (tree / name).mkdir(exist_ok=True)
    if in_user_namespace():
        # A chroot phase mounts a proc of its own PID namespace over this one;
        # a new sysfs would need a network namespace, and hooks need the
        # host's network.
        mount("/proc", tree / "proc", bind=True, cleanup=cleanup)
        rbind_readonly(Path("/sys"), tree / "sys", cleanup=cleanup)
    else:
        mount("proc", tree / "proc", fstype="proc", cleanup=cleanup)
        mount("sysfs", tree / "sys", fstype="sysfs", options="ro,nosuid,nodev,noexec",
              cleanup=cleanup)
    minimal_dev(tree, cleanup=cleanup)


def overlay(lowers: list[Path], upper: Path, work: Path, target: Path, *,
            cleanup: CleanupStack) -> None:
    """Mount an overlay; ``lowers`` are given bottom first. ``volatile``:
    unmounting would otherwise sync the whole filesystem the upper directory
    is on, and wait for whatever the build wrote there meanwhile (a
    ramdisk's initramfs, the cache's copies): 0.2 s to a second at the end
    of each step. A layer lost in a crash fails its cache entry's check."""
    mount("overlay", target, fstype="overlay",
          options=overlay_options(lowers, upper, work, "volatile"), cleanup=cleanup)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this namespace, deepest first."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)
