"""Bring an existing ext2/3/4 filesystem image up to date with a tree, path by path.

A warm rebuild in which only late phases changed touches a handful of files,
yet ``mkfs -d`` would copy the whole tree again. Given the paths that may
differ, ``debugfs`` rewrites just those: each is removed and written anew
from the tree with its mode, owner, times and extended attributes, or
removed when the tree no longer has it. The data blocks a removed file
leaves behind are punched out of the image file, so nothing deleted from the
tree can be read back from the disk.

A directory the tree lost goes with everything in it. Anything this cannot
express exactly (a hard link, a device node, a name debugfs cannot quote, a
full filesystem) raises ``CannotPatch``; the caller then makes the
filesystem from scratch.
"""
from __future__ import annotations

import ctypes
import os
import stat
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dib import runner

#: kinds as debugfs ``ls -p`` prints them in the mode's file-type bits
_DIR, _FILE, _LINK = 0o040000, 0o100000, 0o120000
_SUPERBLOCK = 1024
_UNQUOTABLE = '"\\\n\r\t'


class CannotPatch(Exception):
    """The filesystem has to be made from scratch instead; the text says why."""


@dataclass(frozen=True)
class Existing:
    """What the filesystem holds at a path before patching."""
    kind: int           # stat.S_IFMT bits
    links: int = 1
    blocks: tuple[int, ...] = ()


def update_ext_fs(raw: Path, offset: int, source: Path, paths: list[str],
                  scratch: Path) -> int:
    """Make the filesystem at ``offset`` in ``raw`` match ``source`` at each
    of ``paths`` (relative to the filesystem's root). Returns the number of
    debugfs commands run."""
    paths = sorted(set(_checked(p) for p in paths if p not in ("", ".")))
    with tempfile.TemporaryDirectory(prefix="dib-patch-", dir=scratch) as work:
        image = _FsImage(raw, offset, Path(work))
        wanted = set(paths)
        kinds = {p: k for p, k in image.children({p.rpartition("/")[0] for p in paths}).items()
                 if p in wanted}
        # A directory the tree no longer has goes with everything in it.
        doomed: dict[str, int] = {}
        level = [p for p, k in kinds.items() if k == _DIR and not _is_dir(source / p)]
        while level:
            found = image.children(level)
            doomed.update(found)
            level = [p for p, k in found.items() if k == _DIR]
        kinds.update(doomed)
        existing = image.details(kinds)
        commands, freed = _plan(paths, sorted(doomed), source, existing, Path(work))
        image.punch(freed)
        image.apply(commands)
    return len(commands)


def _is_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _checked(path: str) -> str:
    path = path.strip("/")
    if any(c in path for c in _UNQUOTABLE):
        raise CannotPatch(f"debugfs cannot name {path!r}")
    return path


def _q(path: str) -> str:
    return f'"/{path}"'


def _plan(paths: list[str], doomed: list[str], source: Path,
          existing: dict[str, Existing], work: Path) -> tuple[list[str], list[int]]:
    """The debugfs commands that make each path match the tree (``doomed``
    are inside directories the tree lost), and the file data blocks they free."""
    removed: list[str] = list(doomed)
    writes: list[str] = []
    metadata: list[str] = []
    dirs: list[str] = []
    links = _LinkedParents(source)
    for path in paths:
        have = existing.get(path)
        try:
            # A path whose parent is now a symlink is no longer in the tree
            # as itself: the link is written, its target has paths of its own.
            st = None if links.below_link(path) else os.lstat(source / path)
        except FileNotFoundError:
            st = None
        keep_dir = have is not None and have.kind == _DIR and st is not None and \
            stat.S_ISDIR(st.st_mode)
        if have is not None and not keep_dir:
            removed.append(path)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            dirs.append(path)
            if not keep_dir:
                writes.append(f"mkdir {_q(path)}")
            continue
        if stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                raise CannotPatch(f"/{path} is hard-linked in the tree")
            writes.append(f'write "{source / path}" {_q(path)}')
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(source / path)
            if any(c in target for c in _UNQUOTABLE):
                raise CannotPatch(f"debugfs cannot write the link target of /{path}")
            writes.append(f'symlink {_q(path)} "{target}"')
        else:
            raise CannotPatch(f"/{path} is a device, FIFO or socket")
        metadata.extend(_metadata(path, source / path, st, work))
    # Directories last, deepest first: adding entries to a directory would
    # otherwise leave its times behind the tree's.
    for path in sorted(dirs, key=lambda p: -p.count("/")):
        metadata.extend(_metadata(path, source / path, os.lstat(source / path), work))
    removals, freed = [], []
    for path in sorted(set(removed), key=lambda p: (-p.count("/"), p)):
        have = existing[path]
        removals.append(f"{'rmdir' if have.kind == _DIR else 'rm'} {_q(path)}")
        if have.kind == _FILE and have.links == 1:
            freed.extend(have.blocks)
    return removals + writes + metadata, freed


class _LinkedParents:
    def __init__(self, source: Path) -> None:
        self.source = source
        self.seen: dict[str, bool] = {}

    def below_link(self, path: str) -> bool:
        parent = path.rpartition("/")[0]
        if not parent:
            return False
        if parent not in self.seen:
            self.seen[parent] = os.path.islink(self.source / parent) or \
                self.below_link(parent)
        return self.seen[parent]


def _metadata(path: str, host: Path, st: os.stat_result, work: Path) -> list[str]:
    target = _q(path)
    kind = stat.S_IFMT(st.st_mode)
    cmds = [f"sif {target} mode 0{kind | stat.S_IMODE(st.st_mode):o}",
            f"sif {target} uid {st.st_uid}", f"sif {target} gid {st.st_gid}",
            f"sif {target} atime @{int(st.st_atime)}",
            f"sif {target} mtime @{int(st.st_mtime)}",
            f"sif {target} ctime @{int(st.st_ctime)}"]
    try:
        names = os.listxattr(host, follow_symlinks=False)
    except OSError:
        names = []
    for index, name in enumerate(sorted(names)):
        if name.startswith("system.") and not name.startswith("system.posix_acl"):
            raise CannotPatch(f"/{path} has the attribute {name}")
        value = work / f"xattr-{abs(hash(path))}-{index}"
        value.write_bytes(os.getxattr(host, name, follow_symlinks=False))
        cmds.append(f'ea_set -f "{value}" {target} {name}')
    return cmds


class _FsImage:
    """One ext filesystem inside a disk image file, driven through debugfs."""

    def __init__(self, raw: Path, offset: int, work: Path) -> None:
        self.raw = raw
        self.offset = offset
        self.work = work
        self.device = f"{raw}?offset={offset}"   # debugfs's io_options syntax
        self.block_size = _block_size(raw, offset)

    def _debugfs(self, commands: list[str], writable: bool) -> tuple[str, list[str]]:
        script = self.work / "commands"
        script.write_bytes(os.fsencode("\n".join(commands) + "\n"))
        argv = ["debugfs", *(["-w"] if writable else []), "-f", str(script), self.device]
        result = runner.run(argv, check=False, what="debugfs (update the filesystem in place)")
        complaints = [line for line in result.stderr.splitlines()
                      if line.strip() and not line.startswith("debugfs ")]
        if result.returncode != 0:
            raise CannotPatch(f"debugfs exited with status {result.returncode}: "
                              + "; ".join(complaints[:2]))
        return result.stdout, complaints

    def children(self, directories) -> dict[str, int]:
        """Path and kind of everything directly inside each directory."""
        dirs = sorted(directories)
        if not dirs:
            return {}
        out, _ = self._debugfs([f"ls -p {_q(d)}" if d else "ls -p /" for d in dirs],
                               writable=False)
        listed: dict[str, int] = {}
        for command, lines in _sections(out):
            directory = command.split(None, 2)[2].strip('"').strip("/")
            for line in lines:
                fields = line.split("/")
                if len(fields) < 8 or fields[5] in (".", ".."):
                    continue
                path = f"{directory}/{'/'.join(fields[5:-2])}".lstrip("/")
                listed[_checked(path)] = int(fields[2], 8) & 0o170000
        return listed

    def details(self, kinds: dict[str, int]) -> dict[str, Existing]:
        """Add the link count and data blocks of each regular file."""
        files = [p for p, kind in kinds.items() if kind == _FILE]
        found: dict[str, tuple[int, tuple[int, ...]]] = {}
        if files:
            cmds = [c for p in files for c in (f"stat {_q(p)}", f"blocks {_q(p)}")]
            out, complaints = self._debugfs(cmds, writable=False)
            if complaints:
                raise CannotPatch("debugfs: " + complaints[0])
            found = _file_details(out)
        return {p: Existing(kind, *found.get(p, (1, ()))) for p, kind in kinds.items()}

    def punch(self, blocks: list[int]) -> None:
        """Turn freed data blocks into holes: they read back as zeros."""
        if not blocks:
            return
        for start, count in _runs(sorted(set(blocks))):
            zero_range(self.raw, self.offset + start * self.block_size,
                       count * self.block_size)

    def apply(self, commands: list[str]) -> None:
        if not commands:
            return
        _, complaints = self._debugfs(commands, writable=True)
        if complaints:
            raise CannotPatch("debugfs: " + complaints[0])


def _sections(out: str) -> list[tuple[str, list[str]]]:
    """debugfs -f echoes each command as ``debugfs: CMD``; split its output there."""
    sections: list[tuple[str, list[str]]] = []
    for line in out.splitlines():
        if line.startswith("debugfs: "):
            sections.append((line[len("debugfs: "):], []))
        elif sections and line.strip():
            sections[-1][1].append(line)
    return sections


def _file_details(out: str) -> dict[str, tuple[int, tuple[int, ...]]]:
    links: dict[str, int] = {}
    blocks: dict[str, tuple[int, ...]] = {}
    for command, lines in _sections(out):
        verb, _, target = command.partition(" ")
        path = target.strip().strip('"').strip("/")
        if verb == "stat":
            for line in lines:
                if line.startswith("Links:"):
                    links[path] = int(line.split()[1])
        elif verb == "blocks":
            blocks[path] = tuple(int(b) for line in lines for b in line.split())
    return {p: (links.get(p, 1), blocks.get(p, ())) for p in set(links) | set(blocks)}


def _runs(blocks: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for block in blocks:
        if runs and runs[-1][0] + runs[-1][1] == block:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((block, 1))
    return runs


def _block_size(raw: Path, offset: int) -> int:
    with open(raw, "rb") as fh:
        fh.seek(offset + _SUPERBLOCK)
        sb = fh.read(64)
    if len(sb) < 64:
        raise CannotPatch("the kept disk is shorter than its plan")
    magic = struct.unpack_from("<H", sb, 0x38)[0]
    if magic != 0xEF53:
        raise CannotPatch("no ext filesystem at this offset")
    return 1024 << struct.unpack_from("<I", sb, 0x18)[0]


def zero_range(raw: Path, offset: int, length: int) -> None:
    """Make a range of the image read as zeros, as a hole where the
    filesystem allows it."""
    fd = os.open(raw, os.O_WRONLY)
    try:
        if _LIBC.fallocate(fd, _FALLOC_KEEP_SIZE | _FALLOC_PUNCH_HOLE, offset, length) == 0:
            return
        chunk = bytes(min(length, 8 << 20))
        for start in range(offset, offset + length, len(chunk)):
            os.pwrite(fd, chunk[:offset + length - start], start)
    finally:
        os.close(fd)


_FALLOC_KEEP_SIZE, _FALLOC_PUNCH_HOLE = 0x01, 0x02
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
