"""The entries a root bootstrap leaves in ``/dev``, for outputs of builds without root.

mmdebstrap (and debootstrap), run as root, make a few character devices,
links and directories in the new tree's ``/dev``. In a user namespace the
kernel refuses ``mknod``, so the tree of a rootless build has an empty
``/dev``. Each output of such a build writes what the tree lacks as an entry
of its own format (a tar header, a mksquashfs pseudo file, a debugfs
command), so that the image holds what a root build's holds. This module is
the one place that knows the entries; the outputs only translate them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHAR, LINK, DIR = "c", "l", "d"


@dataclass(frozen=True)
class Node:
    """One entry of a bootstrapped ``/dev``, owned by root."""
    name: str          # below /dev
    kind: str          # CHAR, LINK or DIR
    mode: int          # permission bits
    major: int = 0
    minor: int = 0
    target: str = ""   # what a link points to


#: What mmdebstrap makes in /dev as root (debootstrap makes the same names).
BOOTSTRAP: tuple[Node, ...] = (
    Node("console", CHAR, 0o666, 5, 1),
    Node("fd", LINK, 0o777, target="/proc/self/fd"),
    Node("full", CHAR, 0o666, 1, 7),
    Node("null", CHAR, 0o666, 1, 3),
    Node("ptmx", CHAR, 0o666, 5, 2),
    Node("pts", DIR, 0o755),
    Node("random", CHAR, 0o666, 1, 8),
    Node("shm", DIR, 0o755),
    Node("stderr", LINK, 0o777, target="/proc/self/fd/2"),
    Node("stdin", LINK, 0o777, target="/proc/self/fd/0"),
    Node("stdout", LINK, 0o777, target="/proc/self/fd/1"),
    Node("tty", CHAR, 0o666, 5, 0),
    Node("urandom", CHAR, 0o666, 1, 9),
    Node("zero", CHAR, 0o666, 1, 5),
)


@dataclass(frozen=True)
class DevEntry:
    """A node an output adds, at ``path`` relative to the tree's root."""
    path: str          # "dev/null"
    node: Node
    mtime: int
    uid: int = 0
    gid: int = 0


def missing(tree: Path, nodes: tuple[Node, ...] = BOOTSTRAP,
            epoch: int | None = None) -> tuple[DevEntry, ...]:
    """The entries of ``nodes`` that ``tree``'s /dev lacks, in name order.
    Whatever the tree has at a name stays as it is. They take the time of
    /dev itself, the bootstrap made both at once; no later than ``epoch``
    (SOURCE_DATE_EPOCH) when it is given. Nothing when the tree has no /dev
    directory."""
    dev = tree / "dev"
    if dev.is_symlink() or not dev.is_dir():
        return ()
    mtime = int(dev.stat().st_mtime)
    if epoch is not None:
        mtime = min(mtime, epoch)
    return tuple(DevEntry(f"dev/{node.name}", node, mtime)
                 for node in sorted(nodes, key=lambda n: n.name)
                 if not os.path.lexists(dev / node.name))


def signature(nodes: tuple[Node, ...] = BOOTSTRAP) -> str:
    """The entries as one line, for cache keys: outputs made with another
    set are other outputs."""
    return " ".join(f"{n.name}:{n.kind}:{n.mode:o}:{n.major},{n.minor}:{n.target}"
                    for n in nodes)
