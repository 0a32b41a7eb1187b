"""Finished images, kept under the key of everything they are made from.

An unchanged rebuild then costs a hard link instead of mkfs, bootloader and
qcow2 compression. Files are shared by hard link both ways, so the entry
records each file's size and modification time: an image changed in place
after the build (booted without -snapshot, say) no longer matches and the
entry is dropped instead of handed out. The entry also keeps each file's
SHA-256 when the build worked it out (for the provenance), so an unchanged
rebuild need not read a gigabyte again to name it.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping

KEEP_ENTRIES = 4


class OutputCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "outputs"
        self.root.mkdir(parents=True, exist_ok=True)

    def restore(self, key: str, destination: Path) -> list[Path] | None:
        entry = self.root / key
        try:
            meta = json.loads((entry / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        for name, (size, mtime_ns) in meta["files"].items():
            try:
                st = (entry / name).stat()
            except OSError:
                st = None
            if st is None or st.st_size != size or st.st_mtime_ns != mtime_ns:
                shutil.rmtree(entry, ignore_errors=True)
                return None
        restored = []
        for name in meta["files"]:
            target = destination / name
            _replace_with_link(entry / name, target)
            restored.append(target)
        os.utime(entry / "meta.json")
        return restored

    def sha256(self, key: str) -> dict[str, str]:
        """File name → SHA-256 recorded with the entry (none for an entry
        stored without them). Only meaningful right after ``restore``
        succeeded: that checked the files are the ones stored."""
        return dict(self._meta(key).get("sha256") or {})

    def facts(self, key: str) -> dict[str, Any]:
        """What the build recorded about the tree these files were made from
        (its packages, for the provenance), so that a build restoring them
        need not read the tree."""
        facts = self._meta(key).get("facts")
        return dict(facts) if isinstance(facts, dict) else {}

    def record_sha256(self, key: str, sha256: dict[str, str]) -> None:
        """Add digests to an entry stored without them."""
        self._update(key, lambda meta: meta.update(
            sha256={name: sha256[name] for name in meta["files"] if name in sha256}))

    def _meta(self, key: str) -> dict[str, Any]:
        try:
            meta = json.loads((self.root / key / "meta.json").read_text())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _update(self, key: str, change: Callable[[dict[str, Any]], None]) -> None:
        meta_path = self.root / key / "meta.json"
        meta = self._meta(key)
        if not meta:
            return
        change(meta)
        partial = meta_path.with_name(f".meta.json.{os.getpid()}")
        partial.write_text(json.dumps(meta))
        os.replace(partial, meta_path)

    def store(self, key: str, files: list[Path], sha256: dict[str, str] | None = None,
              facts: Mapping[str, Any] | None = None) -> None:
        """Keep ``files`` under ``key``; ``sha256`` (file name → digest) and
        ``facts`` are recorded with them."""
        if (self.root / key).exists():
            return
        staging = self.root / f".staging-{key}-{os.getpid()}-{time.time_ns()}"
        staging.mkdir()
        try:
            record = {}
            for path in files:
                os.link(path, staging / path.name)
                st = path.stat()
                record[path.name] = [st.st_size, st.st_mtime_ns]
            meta = {"files": record}
            if sha256:
                meta["sha256"] = {name: sha256[name] for name in record if name in sha256}
            if facts:
                meta["facts"] = dict(facts)
            (staging / "meta.json").write_text(json.dumps(meta))
            os.rename(staging, self.root / key)
        except OSError:
            # Another filesystem (no hard links) or a concurrent store: skip.
            shutil.rmtree(staging, ignore_errors=True)
            return
        self._trim()

    def _trim(self) -> None:
        keep_newest(self.root, KEEP_ENTRIES)


def _replace_with_link(source: Path, target: Path) -> None:
    if target.exists() or target.is_symlink():
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def keep_newest(root: Path, keep: int, meta: str = "meta.json") -> None:
    """Keep the ``keep`` entries of ``root`` whose ``meta`` file was touched
    last; remove the rest, and staging directories a killed store left."""
    entries = [p for p in root.iterdir() if (p / meta).exists()]
    entries.sort(key=lambda p: (p / meta).stat().st_mtime, reverse=True)
    for stale in entries[keep:]:
        shutil.rmtree(stale, ignore_errors=True)
    for leftover in root.glob(".staging-*"):
        if time.time() - leftover.stat().st_mtime > 3600:
            shutil.rmtree(leftover, ignore_errors=True)
