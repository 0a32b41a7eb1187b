"""The phase cache on disk: one directory per key, published atomically.

    CACHE/entries/KEY/layer/      the overlay layer a step produced
    CACHE/entries/KEY/meta.json   parent key, step, inputs, size, digest, creator
    CACHE/entries/KEY/shared.json inode → bytes of its files other entries may share
    CACHE/entries/KEY/used        its mtime is the last use; builds hold a
                                  shared lock on it while the layer is mounted
    CACHE/objects/                one link to each file entries share (dedup.py)
    CACHE/tmp/                    staging; a killed store leaves only this behind
    CACHE/locks/KEY               held while a build makes the step for KEY, so a
                                  second build wanting it waits and then reuses it

An entry appears by one rename, so a reader never sees half of one. Its
digest (a listing of every file's type, mode, owner, size, mtime and link
target) is checked on use: an entry that changed on disk is dropped, not
trusted.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from dib.cache import dedup
from dib.runtime.userns import remove_tree

LOG = logging.getLogger("dib.cache")
FORMAT = 1
SHARED = "shared.json"


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    meta: dict[str, Any]

    @property
    def layer(self) -> Path:
        return self.path / "layer"

    @property
    def last_used(self) -> float:
        try:
            return (self.path / "used").stat().st_mtime
        except OSError:
            return 0.0

    @property
    def size(self) -> int:
        return int(self.meta.get("size", 0))

    @property
    def shared(self) -> dict[str, int]:
        """Inode → bytes of its files that other entries may share. Kept
        apart from meta.json, which every lookup reads: it can be long."""
        try:
            shared = json.loads((self.path / SHARED).read_text())
        except (OSError, ValueError):
            return {}
        return shared if isinstance(shared, dict) else {}

    @property
    def parent(self) -> str | None:
        return self.meta.get("parent")


def walk_sorted(root: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, path, lstat) of everything under ``root``, in a fixed
    order: a directory's entries by name, then each subdirectory's in turn
    (symbolic links are not followed). Every lookup of a cached step walks
    its whole layer, so this stays at one system call an entry."""
    yield from _walk_entries(os.fspath(root), "")


def _walk_entries(directory: str, prefix: str) -> Iterator[tuple[str, str, os.stat_result]]:
    try:
        with os.scandir(directory) as listing:
            found = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return      # unreadable: listed by its parent, as os.walk does
    subdirectories = []
    for entry in found:
        st = entry.stat(follow_symlinks=False)
        relative = prefix + entry.name
        yield relative, entry.path, st
        if stat.S_ISDIR(st.st_mode):
            subdirectories.append((entry.path, relative + "/"))
    for path, relative in subdirectories:
        yield from _walk_entries(path, relative)


def listing_digest(root: Path) -> tuple[str, int]:
    """A digest of everything ``os.lstat`` says about a tree, and its size in bytes."""
    digest = hashlib.sha256()
    total = 0
    for rel, path, st in walk_sorted(root):
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
        digest.update(f"{rel}\0{st.st_mode}\0{st.st_uid}\0{st.st_gid}\0{st.st_size}\0"
                      f"{st.st_mtime_ns}\0{st.st_rdev}\0{link}\n".encode("utf-8", "surrogateescape"))
        total += st.st_blocks * 512
    return digest.hexdigest(), total


class CacheStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.entries_dir = self.root / "entries"
        self.tmp_dir = self.root / "tmp"
        self.locks_dir = self.root / "locks"
        self.objects_dir = self.root / "objects"
        for directory in (self.entries_dir, self.tmp_dir, self.locks_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._held: list[int] = []

    # -- reading --------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        path = self.entries_dir / key
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if meta.get("format") != FORMAT:
            return None
        return Entry(key, path, meta)

    def entries(self) -> Iterator[Entry]:
        for path in sorted(self.entries_dir.iterdir()):
            entry = self.get(path.name)
            if entry is not None:
                yield entry

    def use(self, key: str) -> Entry | None:
        """The entry for ``key`` if it is intact, locked against pruning until
        this store is closed; a damaged entry is removed."""
        entry = self.get(key)
        if entry is None:
            return None
        used = entry.path / "used"
        try:
            fd = os.open(used, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            return None     # pruned since get()
        # Locked before the digest is checked: a prune sharing this entry's
        # files holds it exclusively, and the layer is only whole once it is done.
        fcntl.flock(fd, fcntl.LOCK_SH)
        digest, _size = listing_digest(entry.layer)
        if digest != entry.meta.get("digest"):
            os.close(fd)
            LOG.warning("cache entry %s for step %s changed on disk; dropping it", key[:12],
                        entry.meta.get("step"))
            self.remove(entry)
            return None
        self._held.append(fd)
        os.utime(used)
        return entry

    def stamp(self, layer: Path) -> str | None:
        """A name for a layer this store holds that changes whenever its
        contents could have: the key and the digest of its listing (times
        included, so an entry made again after a prune gets a new stamp)."""
        path = Path(layer)
        if path.name != "layer" or path.parent.parent != self.entries_dir:
            return None
        entry = self.get(path.parent.name)
        return f"{entry.key}:{entry.meta.get('digest')}" if entry else None

    def close(self) -> None:
        for fd in self._held:
            os.close(fd)
        self._held.clear()

    # -- writing --------------------------------------------------------------

    @contextmanager
    def making(self, key: str, what: str) -> Iterator[None]:
        """Held while this build makes the entry for ``key``. Another build
        that wants the same key waits here instead of doing the same work,
        then finds the entry. The lock goes with the process, so a killed
        build never leaves anyone waiting."""
        fd = os.open(self.locks_dir / key, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                LOG.info("another build is making %s; waiting to reuse it", what)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def publish(self, key: str, layer: Path, meta: dict[str, Any],
                extras: Mapping[str, Path] | None = None) -> Entry:
        """Move ``layer`` (and each of ``extras`` under its name) into the cache
        under ``key``; returns the entry to use.

        If another build published the same key first, ours is discarded and
        theirs returned (same key, same inputs: the same tree)."""
        existing = self.use(key)
        if existing is not None:
            return existing
        staging = Path(os.path.join(self.tmp_dir, f"{key}.{os.getpid()}.{time.time_ns()}"))
        staging.mkdir()
        try:
            _move(layer, staging / "layer")
            digest, size = listing_digest(staging / "layer")
            record = dict(meta, format=FORMAT, key=key, digest=digest, size=size,
                          created=time.time())
            _write_synced(staging / "meta.json", json.dumps(record, indent=1, sort_keys=True))
            (staging / "used").touch()
            for name, path in (extras or {}).items():
                _move(path, staging / name)
            try:
                os.rename(staging, self.entries_dir / key)
            except OSError:
                # Someone else won the race; theirs is as good as ours.
                _move(staging / "layer", layer)
                shutil.rmtree(staging, ignore_errors=True)
                winner = self.use(key)
                if winner is None:
                    raise
                return winner
        except BaseException:
            if (staging / "layer").exists() and not layer.exists():
                _move(staging / "layer", layer)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        entry = self.use(key)
        assert entry is not None
        return entry

    def share_files(self) -> None:
        """Give the files entries have in common one inode (dedup.py), in
        every entry not shared yet and not mounted by a build now."""
        self.objects_dir.mkdir(exist_ok=True)
        # One sharer at a time, and entries listed once it has its turn: each
        # must see every inode the others gave out.
        with _flock(self.objects_dir, fcntl.LOCK_EX):
            entries = list(self.entries())
            linked = _Linked(entries)
            for entry in entries:
                # A layer known by what it holds (not by key) may be mounted
                # under entries made over another copy of it, which sharing
                # could give its inodes: only layers known by key share.
                by_contents = entry.meta.get("output", entry.key) != entry.key
                if by_contents or (entry.path / SHARED).exists():
                    continue
                with self._unused(entry) as free:
                    if free:
                        self._share_one(entry, linked)

    def _share_one(self, entry: Entry, linked: "_Linked") -> None:
        try:
            shared = dedup.share(self.objects_dir, entry.layer, linked.around(entry))
            _write_synced(entry.path / SHARED, json.dumps(shared))
        except OSError as exc:
            LOG.debug("cache entry %s was not shared: %s", entry.key[:12], exc)
            return
        linked.update(entry, shared)

    @contextmanager
    def _unused(self, entry: Entry) -> Iterator[bool]:
        """Keeps builds from mounting ``entry`` while held; yields False when
        one has it mounted (its lower layer must not change under it)."""
        try:
            fd = os.open(entry.path / "used", os.O_RDWR)
        except OSError:
            yield False     # removed meanwhile
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def size_of(self, entries: Iterable[Entry]) -> int:
        """Bytes ``entries`` take on disk, each shared file counted once."""
        return dedup.Usage((e.key, e.size, e.shared) for e in entries).total

    def collect_objects(self) -> int:
        """Drop index links to files no entry holds any more."""
        return dedup.collect(self.objects_dir)

    def remove(self, entry: Entry) -> None:
        doomed = self.tmp_dir / f"removing-{entry.key}.{os.getpid()}"
        try:
            os.rename(entry.path, doomed)
        except OSError:
            return
        # remove_tree: a rootless build's layers hold files of subordinate ids.
        remove_tree(doomed)

    def in_use(self, entry: Entry) -> bool:
        try:
            return _is_locked(entry.path / "used")
        except OSError:
            return False

    def sweep_staging(self, older_than: float = 3600) -> None:
        """Remove what killed stores left in tmp/, and old locks nobody holds."""
        now = time.time()
        for path in self.tmp_dir.iterdir():
            try:
                age = now - path.lstat().st_mtime
            except OSError:
                continue
            if age > older_than or path.name.startswith("removing-"):
                remove_tree(path)
        for path in self.locks_dir.iterdir():
            try:
                if now - path.lstat().st_mtime > older_than and not _is_locked(path):
                    path.unlink()
            except OSError:
                continue


class _Linked:
    """The multiply linked inodes of each layer, read once per prune: no two
    paths a build sees at once (its chain of layers) may share an inode."""

    def __init__(self, entries: list[Entry]) -> None:
        self._by_key = {e.key: e for e in entries}
        self._children: dict[str | None, list[str]] = {}
        for entry in entries:
            self._children.setdefault(entry.parent, []).append(entry.key)
        self._inodes: dict[str, set[int]] = {}

    def around(self, entry: Entry) -> set[int]:
        """Inodes of the layers mounted with ``entry``: below it and above it."""
        found: set[int] = set()
        for key in self._chain(entry) - {entry.key}:
            if key not in self._inodes:
                self._inodes[key] = dedup.inodes_of(self._by_key[key].layer)
            found |= self._inodes[key]
        return found

    def update(self, entry: Entry, shared: Mapping[str, int]) -> None:
        if entry.key in self._inodes:
            self._inodes[entry.key] |= {int(inode) for inode in shared}

    def _chain(self, entry: Entry) -> set[str]:
        keys, key = set(), entry.key
        while key in self._by_key and key not in keys:
            keys.add(key)
            key = self._by_key[key].parent
        waiting = [entry.key]
        while waiting:
            for child in self._children.get(waiting.pop(), []):
                if child not in keys:
                    keys.add(child)
                    waiting.append(child)
        return keys


@contextmanager
def _flock(path: Path, how: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)


def _is_locked(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _move(source: Path, destination: Path) -> None:
    try:
        os.rename(source, destination)
    except OSError:
        # Another filesystem: copy everything (xattrs, whiteouts) and remove.
        from dib import runner
        runner.run(["cp", "-a", "--", str(source), str(destination)], what="storing a layer")
        shutil.rmtree(source)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
