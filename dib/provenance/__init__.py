"""SLSA v1 provenance beside every image, and checking an image against it
(docs/provenance.md)."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Mapping

from dib.outputs.base import file_digests
from dib.provenance.statement import (BUILD_TYPE, BUILDER_ID, PREDICATE_TYPE,
                                      STATEMENT_TYPE, SUFFIX, BuildFacts, build_statement)
from dib.sbom import dpkg, rootfs
from dib.sbom.inventory import Distro

__all__ = ["BUILD_TYPE", "BUILDER_ID", "PREDICATE_TYPE", "STATEMENT_TYPE", "SUFFIX",
           "BuildFacts", "build_statement", "provenance_path", "subject_digests", "read_packages",
           "write_provenance"]

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
