"""Reading files of an image tree from the host, as the image would see them.

An absolute symlink in the tree (``/etc/os-release -> /usr/lib/os-release``)
names a path of the image, not of the host, so links are followed by hand
and never leave the tree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

# More links than this on one path is a loop.
_MAX_LINKS = 40


def resolve(root: Path, relative: str, follow_last: bool = True) -> str | None:
    """``relative`` (with or without a leading slash) as a path relative to
    ``root`` with every symlink resolved inside the tree; None for a loop."""
    def link_target(path: str) -> str | None:
        candidate = os.path.join(root, path)
        return os.readlink(candidate) if os.path.islink(candidate) else None
    return resolve_links(relative, link_target, follow_last)


def resolve_links(relative: str, link_target: Callable[[str], str | None],
                  follow_last: bool = True) -> str | None:
    """``relative`` with every symlink resolved inside the tree, the links
    read through ``link_target`` (a tree-relative path → the link's target,
    or None where the path is no symlink); None for a loop. Any tree: a
    directory, or an archive's members."""
    pending = [p for p in relative.split("/") if p not in ("", ".")]
    pending.reverse()
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        target = link_target("/".join([*done, part])) if (pending or follow_last) else None
        if target is not None:
            links += 1
            if links > _MAX_LINKS:
                return None
            if target.startswith("/"):
                done = []
            pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
            continue
        done.append(part)
    return "/".join(done)


def read_text(root: Path, relative: str) -> str | None:
    """A regular file of the tree as text (undecodable bytes replaced), or None."""
    resolved = resolve(root, relative)
    if resolved is None:
        return None
    path = root / resolved
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8", errors="replace")


def os_release(root: Path) -> dict[str, str]:
    """The image's os-release fields (empty when it has none)."""
    text = read_text(root, "etc/os-release") or read_text(root, "usr/lib/os-release") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        fields[key] = value
    return fields


@dataclass(frozen=True)
class Directory:
    """One directory of the tree, as ``scan`` lists it."""

    path: str                   # relative to the root: "usr/lib"
    names: tuple[str, ...]      # every entry, sorted
    regular: frozenset[str]     # regular files (not symlinks)
    subdirectories: tuple[str, ...]   # real directories (not symlinks), sorted, descended into

    def below(self, name: str) -> str:
        return f"{self.path}/{name}"


#: compiled Python, rewritten by the interpreter; nothing the SBOM lists
SKIPPED_DIRECTORY = "__pycache__"


def scan(root: Path, starts: Iterable[str]) -> list[Directory]:
    """Every directory under each of ``starts`` (relative paths), parents
    before children, ``__pycache__`` left out: one listing for all the
    SBOM's readers, each entry read once."""
    found: list[Directory] = []
    for start in starts:
        found.extend(_scan(os.path.join(root, start), start.strip("/")))
    return found


def _scan(directory: str, relative: str) -> Iterator[Directory]:
    try:
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return
    regular = frozenset(e.name for e in entries if e.is_file(follow_symlinks=False))
    subdirectories = tuple(e.name for e in entries if e.is_dir(follow_symlinks=False)
                           and e.name != SKIPPED_DIRECTORY)
    yield Directory(relative, tuple(e.name for e in entries), regular, subdirectories)
    for name in subdirectories:
        yield from _scan(os.path.join(directory, name), f"{relative}/{name}")
