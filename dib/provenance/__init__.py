"""SLSA v1 provenance beside every image, and checking an image against it
(docs/provenance.md)."""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Mapping

from dib.outputs.base import file_digest, file_digests
from dib.provenance.statement import (BUILD_TYPE, BUILDER_ID, PREDICATE_TYPE,
                                      STATEMENT_TYPE, SUFFIX, BuildFacts, build_statement)
from dib.sbom import dpkg, rootfs
from dib.sbom.inventory import Distro

__all__ = ["BUILD_TYPE", "BUILDER_ID", "PREDICATE_TYPE", "STATEMENT_TYPE", "SUFFIX",
           "BuildFacts", "DigestsAhead", "build_statement", "provenance_path",
           "subject_digests", "read_packages", "write_provenance"]

LOG = logging.getLogger("dib.build")


def provenance_path(image_name: str | Path) -> Path:
    """NAME.provenance.json for the image NAME (no extension, DIB's -o)."""
    return Path(f"{image_name}.{SUFFIX}")


def subject_digests(files: Iterable[Path], known: Mapping[str, str]) -> dict[str, str]:
    """File name → SHA-256 of each file: the one ``known`` recorded for it
    (an output restored unchanged from the cache), else read now."""
    files = [Path(f) for f in files]
    missing = [f for f in files if f.name not in known]
    found = file_digests((f, "sha256") for f in missing)
    return {f.name: known[f.name] if f.name in known else found[(f, "sha256")]
            for f in files}


#: what says a file is unchanged: inode, size, mtime and ctime
Signature = tuple[int, int, int, int]


def _signature(path: Path) -> Signature:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _read(path: Path) -> tuple[Signature, str] | None:
    """The file's SHA-256 and the signature it had all the while it was
    read; None when it changed meanwhile or is gone."""
    try:
        before = _signature(path)
        digest = file_digest(path)
        return (before, digest) if _signature(path) == before else None
    except OSError:
        return None


class DigestsAhead:
    """SHA-256 of files the build made before its end (a ramdisk's kernel and
    initramfs, written by cleanup.d), read in a thread of their own while
    the steps after go on: the provenance then need not wait for them. A
    file that changed after it was read is read again."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[Path, Future[tuple[Signature, str] | None]] = {}

    def start(self, files: Iterable[Path]) -> None:
        for path in files:
            if path in self._pending or not path.is_file():
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digests")
            self._pending[path] = self._pool.submit(_read, path)

    def known(self, files: Iterable[Path]) -> dict[str, str]:
        """File name → SHA-256 of each of ``files`` read ahead and unchanged since."""
        found = {}
        for path in files:
            future = self._pending.get(path)
            result = future.result() if future is not None else None
            if result is None:
                continue
            signature, digest = result
            try:
                if _signature(path) == signature:
                    found[path.name] = digest
            except OSError:
                continue
        return found

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def read_packages(tree: Path) -> tuple[list[dpkg.DebPackage], Distro]:
    """The Debian packages of the finished tree and its distribution, read
    the way the SBOM reads them."""
    return dpkg.read_packages(tree), Distro.from_os_release(rootfs.os_release(tree))


def write_provenance(path: Path, facts: BuildFacts) -> Path:
    text = json.dumps(build_statement(facts), indent=1, ensure_ascii=False) + "\n"
    # Written whole, then renamed: a reader never sees half a statement.
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path
