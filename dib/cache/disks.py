"""The raw disk of the latest build of each disk layout, kept so that the
next build of that layout can update its filesystems in place instead of
making them again.

    CACHE/disks/SLOT/disk.raw     the sparse raw disk image
    CACHE/disks/SLOT/meta.json    the disk plan, the layers the tree was made
                                  of (with the paths each holds), and the
                                  size and mtime disk.raw had when stored

A build takes the disk by renaming it into its workspace, so it is the only
one to change it; a build running at the same time finds the slot empty and
makes its own disk. A disk whose size or mtime no longer match what was
recorded is thrown away, not patched.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from dib.cache.outputs import keep_newest

LOG = logging.getLogger("dib.cache")
KEEP_SLOTS = 2
RAW = "disk.raw"
META = "meta.json"


class DiskBases:
    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / "disks"

    def take(self, slot: str, dest: Path) -> dict[str, Any] | None:
        """Move the slot's disk to ``dest`` and return its record, or None."""
        entry = self.root / slot
        try:
            meta = json.loads((entry / META).read_text())
            os.rename(entry / RAW, dest)
        except (OSError, ValueError):
            return None
        shutil.rmtree(entry, ignore_errors=True)
        st = dest.stat()
        if st.st_size != meta.get("raw_size") or st.st_mtime_ns != meta.get("raw_mtime_ns") \
                or not _well_formed(meta):
            LOG.info("cache: the kept disk of this layout changed on disk; not using it")
            dest.unlink()
            return None
        return meta

    def put(self, slot: str, raw: Path, meta: dict[str, Any]) -> bool:
        """Move ``raw`` into the slot. False when it cannot be moved there
        (another filesystem), in which case it is left where it was."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".staging-{slot}-{os.getpid()}-{time.time_ns()}"
        staging.mkdir()
        try:
            os.rename(raw, staging / RAW)
        except OSError:
            staging.rmdir()
            return False
        st = (staging / RAW).stat()
        record = dict(meta, raw_size=st.st_size, raw_mtime_ns=st.st_mtime_ns,
                      stored=time.time())
        (staging / META).write_text(json.dumps(record))
        entry = self.root / slot
        shutil.rmtree(entry, ignore_errors=True)
        try:
            os.rename(staging, entry)
        except OSError:     # another build stored this slot just now
            shutil.rmtree(staging, ignore_errors=True)
        keep_newest(self.root, KEEP_SLOTS, META)
        return True

    def held_bytes(self) -> tuple[int, int]:
        """How many disks are kept, and the bytes they take on disk."""
        raws = list(self.root.glob(f"*/{RAW}")) if self.root.is_dir() else []
        return len(raws), sum(r.stat().st_blocks * 512 for r in raws)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _well_formed(meta: dict[str, Any]) -> bool:
    layers = meta.get("layers")
    return isinstance(meta.get("plan"), str) and isinstance(meta.get("size"), int) and \
        isinstance(layers, list) and all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], (str, type(None)))
            and isinstance(e[1], (list, type(None))) for e in layers)
