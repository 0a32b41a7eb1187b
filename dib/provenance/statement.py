"""The provenance statement itself: an in-toto Statement v1 whose predicate
is SLSA Provenance v1, made from plain facts about one build.

Nothing here reads the build's files or the clock: the caller hands in the
digests, the packages and the times, so the same facts always give the same
statement (docs/provenance.md describes every field).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from dib.cache.keys import directory_digest
from dib.config.build import BuildConfig
from dib.config.hostapt import without_credentials
from dib.config.settings import SETTINGS
from dib.sbom import dpkg
from dib.sbom.inventory import Distro, deb_purl

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# Ours, defined in docs/provenance.md: a URN because the project owns no
# domain a URL could live under.
BUILD_TYPE = "urn:dib:build-type:disk-image:v1"
BUILDER_ID = "urn:dib:builder:local-host:v1"
#: the file beside the image: NAME.provenance.json
SUFFIX = "provenance.json"
# What each entry of resolvedDependencies is, in its annotations.
KIND = "kind"


@dataclass(frozen=True)
class BuildFacts:
    """What one build knows about itself once its outputs are written."""

    config: BuildConfig
    #: file name beside the image → its SHA-256
    subjects: Mapping[str, str]
    #: the resolved elements, in the build's order: (name, directory)
    elements: list[tuple[str, Path]]
    #: the hooks' environment as the build resolved it
    env: Mapping[str, str]
    packages: list[dpkg.DebPackage] = field(default_factory=list)
    distro: Distro = Distro("debian", "")
    dib_version: str = ""
    host_arch: str = ""
    build_id: str | None = None
    started: float = 0.0
    finished: float = 0.0
    source_date_epoch: str | None = None


def utc(seconds: float) -> str:
    """RFC 3339 in UTC, whole seconds, as SLSA's Timestamp."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def _plain(value: Any) -> Any:
    """A setting's value as JSON holds it (tuples become lists)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def recorded_settings(config: BuildConfig) -> dict[str, Any]:
    """Every setting the registry marks as shaping the image (``recorded``),
    by its registry name, as this build resolved it."""
    return {s.name: _plain(getattr(config, s.name)) for s in SETTINGS
            if s.recorded and s.name != "image_types"}


def external_parameters(config: BuildConfig) -> dict[str, Any]:
    return {"elements": list(config.elements), "types": list(config.image_types),
            "ramdisk": config.ramdisk, "settings": recorded_settings(config)}


def element_dependencies(elements: Iterable[tuple[str, Path]]) -> list[dict[str, Any]]:
    """Each element directory with the digest of its content, computed as
    the phase cache digests files for its keys."""
    return [{"name": name, "digest": {"sha256": directory_digest(Path(path))},
             "annotations": {KIND: "element", "path": str(path)}}
            for name, path in elements]


def mirror_dependencies(env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The mirror the operating system was bootstrapped from and its suite,
    as the build resolved them (DIB_DISTRIBUTION_MIRROR, DIB_RELEASE)."""
    mirror = env.get("DIB_DISTRIBUTION_MIRROR", "").strip()
    if not mirror:
        return []
    annotations = {KIND: "distribution-mirror"}
    if env.get("DIB_RELEASE"):
        annotations["suite"] = env["DIB_RELEASE"]
    if env.get("DISTRO_NAME"):
        annotations["distro"] = env["DISTRO_NAME"]
    return [{"name": "distribution-mirror", "uri": without_credentials(mirror),
             "annotations": annotations}]


def package_dependencies(packages: Iterable[dpkg.DebPackage],
                         distro: Distro) -> list[dict[str, Any]]:
    """Each Debian package in the image, by its package URL (the SBOM's)."""
    return [{"name": p.name, "uri": deb_purl(p, distro),
             "annotations": {KIND: "deb", "version": p.version,
                             "architecture": p.architecture}}
            for p in packages]


def build_statement(facts: BuildFacts) -> dict[str, Any]:
    """The in-toto statement for ``facts``. With SOURCE_DATE_EPOCH set both
    times are that instant and the build's id is left out, so the same
    build gives the same statement byte for byte."""
    epoch = facts.source_date_epoch
    metadata: dict[str, Any] = {
        "startedOn": utc(int(epoch) if epoch else facts.started),
        "finishedOn": utc(int(epoch) if epoch else facts.finished)}
    if facts.build_id and not epoch:
        metadata = {"invocationId": facts.build_id, **metadata}
    dependencies = (element_dependencies(facts.elements) + mirror_dependencies(facts.env)
                    + package_dependencies(facts.packages, facts.distro))
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}}
                    for name, digest in sorted(facts.subjects.items())],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external_parameters(facts.config),
                "internalParameters": {"dibVersion": facts.dib_version,
                                       "hostArch": facts.host_arch},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"dib": facts.dib_version}},
                "metadata": metadata,
            },
        },
    }
