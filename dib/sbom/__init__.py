"""Software bills of materials: what is in an image, as SPDX 2.3 and
CycloneDX 1.5 JSON, read from the finished tree (docs/sbom.md)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from dib import __version__
from dib.errors import ConfigError
from dib.sbom import documents
from dib.sbom.files import DigestMemo
from dib.sbom.inventory import collect

#: format → (file suffix, document builder)
FORMATS = {"spdx": ("spdx.json", documents.spdx),
           "cyclonedx": ("cdx.json", documents.cyclonedx)}
DEFAULT_MANIFEST_DIR = "/etc/dib-manifests"
# The copies inside the image, in the manifests directory.
INSIDE_NAME = "sbom"
#: under the cache directory: the loose files' digests, for the next SBOM
DIGEST_MEMO = "sbom/digests.json"


def code_identity() -> str:
    """A digest of this package's source: the cache key of the SBOM step
    holds it, so a dib whose SBOM code changed writes the SBOM anew."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def check_source_date_epoch(value: str | None) -> str | None:
    if value and not value.strip().isdigit():
        raise ConfigError(f"SOURCE_DATE_EPOCH: invalid value '{value}': expected seconds "
                          "since 1970 (an integer)",
                          hint="unset it, or set it to a whole number such as the time of "
                               "your last commit")
    return value.strip() if value else None


def write_sboms(tree: Path, image_name: str, formats: Iterable[str], *,
                manifest_dir: str = DEFAULT_MANIFEST_DIR,
                elements: Iterable[tuple[str, Path]] = (),
                source_date_epoch: str | None = None,
                digest_memo: Path | None = None) -> list[Path]:
    """Write each format beside the image (``NAME.spdx.json``…) and into
    the tree's manifests directory (``sbom.spdx.json``…); returns the files
    written beside the image. ``digest_memo``: a file where the loose files'
    digests are kept from one build to the next."""
    formats = list(formats)
    created = documents.timestamp(check_source_date_epoch(source_date_epoch))
    memo = DigestMemo(digest_memo) if digest_memo is not None else None
    inventory = collect(tree, os.path.basename(image_name), manifest_dir, elements, memo)
    if memo is not None:
        memo.save()
    inside = tree / manifest_dir.strip("/")
    inside.mkdir(parents=True, exist_ok=True)
    Path(image_name).parent.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in formats:
        suffix, build = FORMATS[kind]
        text = json.dumps(build(inventory, created, f"dib-{__version__}"), indent=1,
                          ensure_ascii=False) + "\n"
        beside = Path(f"{image_name}.{suffix}")
        beside.write_text(text, encoding="utf-8")
        copy = inside / f"{INSIDE_NAME}.{suffix}"
        copy.write_text(text, encoding="utf-8")
        # As the manifests element leaves every manifest in the image.
        if os.geteuid() == 0:
            os.chown(copy, 0, 0)
        copy.chmod(0o600)
        written.append(beside)
    return written
