"""A finished image and what its build wrote beside it, read for ``dib push``.

Beside ``NAME.qcow2`` (or ``NAME.raw``) a build leaves ``NAME.spdx.json``,
``NAME.provenance.json`` and the ``NAME.d/`` manifests directory; each is
optional (``--no-sbom``, ``--no-provenance``, an image copied elsewhere).
The provenance is believed only when it names this very file (its SHA-256
is a subject): a statement of another build would put wrong facts on it.
"""
from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any

from dib.config.build import host_arch
from dib.errors import ConfigError
from dib.outputs.base import file_digest
from dib.provenance.statement import SUFFIX as PROVENANCE_SUFFIX
from dib.provenance.verify import load_subjects
from dib.publish import layout

LOG = logging.getLogger("dib.publish")

QCOW2_MAGIC = b"QFI\xfb"
RAW_SUFFIXES = (".raw", ".img")
SPDX_SUFFIX = "spdx.json"


def image_format(path: Path) -> str:
    """qcow2 or raw, from the file's first bytes; ConfigError for a name that
    says another format or a .qcow2 that is not one."""
    try:
        with open(path, "rb") as handle:
            qcow2 = handle.read(4) == QCOW2_MAGIC
    except OSError as exc:
        raise ConfigError(f"IMAGE {path} cannot be read: {exc.strerror or exc}",
                          hint="check the file's permissions") from None
    if qcow2:
        return "qcow2"
    if path.suffix == ".qcow2":
        raise ConfigError(f"IMAGE {path} is named .qcow2 but is not a qcow2 image",
                          hint="check the file (qemu-img info), or rename a raw image .raw")
    if path.suffix not in RAW_SUFFIXES:
        raise ConfigError(f"IMAGE {path} is neither a qcow2 image nor named .raw or .img",
                          hint="dib push publishes disk images: give NAME.qcow2 or NAME.raw "
                               "(build with -t qcow2 or -t raw)")
    return "raw"


def check_image(path: Path) -> str:
    """The format of the image at ``path``; ConfigError if it is none."""
    _checked_file(path)
    return image_format(path)


def _checked_file(path: Path) -> None:
    if not path.exists():
        raise ConfigError(f"IMAGE {path} does not exist",
                          hint="give the path of a built image, e.g. NAME.qcow2 from "
                               "dib build -o NAME")
    if not path.is_file():
        raise ConfigError(f"IMAGE {path} is not a file",
                          hint="give the image file, not its directory")


def utc(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def provenance_facts(statement: dict[str, Any]) -> tuple[dict[str, str], str | None, str | None]:
    """(annotations, finishedOn, arch) a statement gives: the elements asked
    for, dib's version, the build's id."""
    predicate = statement.get("predicate") or {}
    parameters = (predicate.get("buildDefinition") or {}).get("externalParameters") or {}
    run = predicate.get("runDetails") or {}
    metadata = run.get("metadata") or {}
    facts = {}
    elements = parameters.get("elements")
    if isinstance(elements, list) and all(isinstance(e, str) for e in elements):
        facts[layout.ELEMENTS] = " ".join(elements)
    version = ((run.get("builder") or {}).get("version") or {}).get("dib")
    if isinstance(version, str):
        facts[layout.VERSION] = version
    if isinstance(metadata.get("invocationId"), str):
        facts[layout.BUILD] = metadata["invocationId"]
    finished = metadata.get("finishedOn")
    arch = (parameters.get("settings") or {}).get("arch")
    return (facts, finished if isinstance(finished, str) else None,
            arch if isinstance(arch, str) else None)


def _provenance(path: Path, sha256: str) -> dict[str, Any] | None:
    """The statement at ``path`` if it names the image; None (with a
    warning) if it is about another file."""
    if sha256 not in load_subjects(path).values():
        LOG.warning("%s does not name this image (its SHA-256 is no subject); "
                    "pushing without it", path)
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def disk_image(path: Path) -> layout.DiskImage:
    """The image at ``path`` with its sidecars and facts; ConfigError for a
    path that is not a disk image."""
    kind = check_image(path)
    LOG.info("reading %s (%d MiB) for its SHA-256", path, path.stat().st_size >> 20)
    sha256 = file_digest(path)
    stem = path.with_suffix("")
    sidecars: list[layout.Sidecar] = []
    facts: dict[str, str] = {}
    created, arch = utc(path.stat().st_mtime), None
    spdx = stem.with_name(f"{stem.name}.{SPDX_SUFFIX}")
    if spdx.is_file():
        sidecars.append(layout.Sidecar(layout.SPDX_TYPE, spdx.name, spdx))
    statement_path = stem.with_name(f"{stem.name}.{PROVENANCE_SUFFIX}")
    statement = _provenance(statement_path, sha256) if statement_path.is_file() else None
    if statement is not None:
        sidecars.append(layout.Sidecar(layout.PROVENANCE_TYPE, statement_path.name,
                                       statement_path))
        facts, finished, arch = provenance_facts(statement)
        created = finished or created
    manifests = stem.with_name(f"{stem.name}.d")
    if manifests.is_dir():
        sidecars.append(layout.Sidecar(layout.MANIFESTS_TYPE, f"{manifests.name}.tar",
                                       manifests))
    return layout.DiskImage(path=path, format=kind, sha256=sha256, size=path.stat().st_size,
                            created=created, arch=arch or host_arch(), facts=facts,
                            sidecars=tuple(sidecars))

