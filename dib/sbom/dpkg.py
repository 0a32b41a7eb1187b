"""The Debian packages of an image, read from dpkg's own database in the
tree (no chroot, no dpkg-query: the tree may be for another architecture)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from dib.sbom import deb822, rootfs

ADMIN_DIR = "var/lib/dpkg"
# dpkg states in which the package's files are on disk; "config-files" and
# "not-installed" packages are only remembered by dpkg.
_PRESENT_STATES = {"installed", "unpacked", "half-installed", "half-configured",
                   "triggers-awaited", "triggers-pending"}
#: the states in which dpkg counts a package as installed (configured, or
#: waiting only for triggers or the end of its configuration)
INSTALLED_STATES = {"installed", "half-configured", "triggers-awaited", "triggers-pending"}
_SOURCE = re.compile(r"^(?P<name>\S+)(?:\s+\((?P<version>[^)]+)\))?$")


@dataclass(frozen=True)
class DebPackage:
    name: str
    version: str
    architecture: str
    source: str
    source_version: str
    #: dpkg's state word ("installed", "unpacked", ...)
    state: str = "installed"


def parse_status(text: str) -> list[DebPackage]:
    """The packages whose files are in the tree, sorted by name and
    architecture, from the text of dpkg's ``status`` file."""
    found = []
    for para in deb822.paragraphs(text):
        name = deb822.field(para, "Package")
        version = deb822.field(para, "Version")
        status = (deb822.field(para, "Status") or "").split()
        if not name or not version or not status or status[-1] not in _PRESENT_STATES:
            continue
        source, source_version = name, version
        match = _SOURCE.match(deb822.field(para, "Source") or "")
        if match:
            source = match["name"]
            source_version = match["version"] or version
        found.append(DebPackage(name=name, version=version,
                                architecture=deb822.field(para, "Architecture") or "",
                                source=source, source_version=source_version,
                                state=status[-1]))
    return sorted(found, key=lambda p: (p.name, p.architecture))


def read_packages(root: Path) -> list[DebPackage]:
    """The packages installed in the tree at ``root``; none without dpkg."""
    text = rootfs.read_text(root, f"{ADMIN_DIR}/status")
    return parse_status(text) if text else []


def owned_paths(root: Path) -> set[str]:
    """Every path some package's file list (``info/*.list``) or a diversion
    names, relative to the tree and with symlinked directories resolved
    (dpkg says ``/bin/sh`` where a merged-/usr tree holds ``usr/bin/sh``)."""
    info = root / ADMIN_DIR / "info"
    listed: set[str] = set()
    if info.is_dir():
        for entry in os.scandir(info):
            if entry.name.endswith(".list") and entry.is_file(follow_symlinks=False):
                with open(entry.path, encoding="utf-8", errors="surrogateescape") as handle:
                    listed.update(line.rstrip("\n") for line in handle)
    listed.update(_diverted(root))
    return _canonical(root, listed)


def _diverted(root: Path) -> list[str]:
    """The paths diverted files were moved to: a package put them there too.
    The diversions file holds three lines per diversion: from, to, package."""
    text = rootfs.read_text(root, f"{ADMIN_DIR}/diversions") or ""
    lines = text.splitlines()
    return [lines[i + 1] for i in range(0, len(lines) - 2, 3)]


def _canonical(root: Path, paths: set[str]) -> set[str]:
    resolved: dict[str, str | None] = {"": ""}

    def directory(path: str) -> str | None:
        """``path`` with its links resolved, each directory looked at once:
        a tree's lists name some 3,000 directories, most under a few others."""
        if path not in resolved:
            parent, _, name = path.rpartition("/")
            base = directory(parent)
            candidate = None if base is None else f"{base}/{name}" if base else name
            if candidate is not None and (name in ("", ".", "..") or
                                          os.path.islink(os.path.join(root, candidate))):
                candidate = rootfs.resolve(root, candidate)
            resolved[path] = candidate
        return resolved[path]

    out: set[str] = set()
    for path in paths:
        parent, _, name = path.strip("/").rpartition("/")
        if not name:
            continue
        found = directory(parent)
        if found is not None:
            out.add(f"{found}/{name}" if found else name)
    return out
