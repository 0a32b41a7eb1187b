"""``dib verify``: is this file one the provenance statement names?

An image matches when its SHA-256 is the digest of one of the statement's
subjects (in-toto matches subjects by digest alone). The statement's own
authenticity is not checked here: a statement is not signed by dib.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dib.errors import ConfigError, DibError
from dib.outputs.base import file_digest
from dib.provenance.statement import PREDICATE_TYPE, STATEMENT_TYPE, SUFFIX

# Far above any real statement (a few hundred KiB with every package): a
# bigger file is an image given as --provenance by mistake, not read whole.
MAX_STATEMENT_BYTES = 64 << 20


class VerifyFailed(DibError):
    """The image is not what the provenance names (exit status 1)."""


@dataclass(frozen=True)
class Verified:
    image: Path
    provenance: Path
    sha256: str
    subject: str      # the name the statement gives the matching subject

    def line(self) -> str:
        renamed = "" if self.subject == self.image.name else f" (as {self.subject})"
        return (f"OK {self.image} sha256:{self.sha256} is a subject of "
                f"{self.provenance}{renamed}")


def default_provenance(image: Path) -> Path:
    """The statement beside ``image``: NAME.provenance.json, NAME being the
    image's file name less its extension (vm.qcow2, vm.docker.tar and
    vm.initramfs are all outputs of the image vm). The longest such name
    that exists wins."""
    candidates = []
    stem = image.name
    while "." in stem:
        stem = stem.rsplit(".", 1)[0]
        candidates.append(image.with_name(f"{stem}.{SUFFIX}"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates) or "none (IMAGE has no extension)"
    raise ConfigError(f"no provenance beside {image}: looked for {looked}",
                      hint="pass the statement with --provenance FILE; builds write "
                           f"NAME.{SUFFIX} unless --no-provenance was given")


def load_subjects(path: Path) -> dict[str, str]:
    """Subject name → SHA-256 of a provenance statement; a file that is
    not one is the caller's mistake (ConfigError, exit status 2)."""
    try:
        size = path.stat().st_size
        if size > MAX_STATEMENT_BYTES:
            raise ConfigError(f"{path} is not a provenance statement: {size} bytes is far "
                              "too big for one (is it an image?)")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--provenance: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--provenance: cannot read {path}: {exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a provenance statement: not JSON ({exc})") from None
    return _subjects(document, path)


def _subjects(document: Any, path: Path) -> dict[str, str]:
    def refuse(why: str) -> ConfigError:
        return ConfigError(f"{path} is not a provenance statement: {why}",
                           hint=f"dib writes an in-toto statement ({STATEMENT_TYPE}) of "
                                f"SLSA provenance ({PREDICATE_TYPE}) as NAME.{SUFFIX}")
    if not isinstance(document, dict):
        raise refuse("not a JSON object")
    if document.get("_type") != STATEMENT_TYPE:
        raise refuse(f"its _type is {document.get('_type')!r}, not {STATEMENT_TYPE}")
    if document.get("predicateType") != PREDICATE_TYPE:
        raise refuse(f"its predicateType is {document.get('predicateType')!r}, "
                     f"not {PREDICATE_TYPE}")
    subjects = document.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise refuse("it has no subject list")
    found: dict[str, str] = {}
    for number, subject in enumerate(subjects):
        digest = subject.get("digest") if isinstance(subject, dict) else None
        sha256 = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(sha256, str):
            raise refuse(f"subject {number} has no sha256 digest")
        found[str(subject.get("name") or f"subject {number}")] = sha256.lower()
    return found


def verify(image: Path, provenance: Path | None = None) -> Verified:
    """Check ``image`` against its statement (by default the one beside it)."""
    if not image.exists():
        raise ConfigError(f"{image} does not exist")
    if not image.is_file():
        raise ConfigError(f"{image} is not a file",
                          hint="give an image file (NAME.qcow2, NAME.raw, NAME.tar, ...)")
    provenance = provenance if provenance is not None else default_provenance(image)
    subjects = load_subjects(provenance)
    actual = file_digest(image, "sha256")
    for name, sha256 in subjects.items():
        if sha256 == actual:
            return Verified(image, provenance, actual, name)
    if image.name in subjects:
        raise VerifyFailed(f"{image} does not match {provenance}: its sha256 is {actual}, "
                           f"the statement records {subjects[image.name]}",
                           hint="the file changed after the build, or the statement is of "
                                "another build")
    raise VerifyFailed(f"{image} (sha256 {actual}) is not a subject of {provenance}, "
                       f"which names {', '.join(sorted(subjects))}")
