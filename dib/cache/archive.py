"""What the apt archives a build installs from hold: an input of the
bootstrap's key.

Without it a cached bootstrap, and every step after it, would be reused
after the archive moved on (a point release, a security update): the image
would keep the old packages, and a step that reran would ask apt for files
the mirror no longer has. Each source of ``DIB_APT_SOURCES_CONF`` ("NAME:deb
URI SUITE COMPONENTS" lines) is read through its suite's InRelease file,
whose SHA-256 list names every package index. The input is the digest of
the indexes this build's architecture reads, so a Release file that was only
signed or dated again changes nothing.

The last state read is remembered in the cache: an offline build
(``--offline``) or an archive that does not answer uses it, so a warm cache
keeps working without the network.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from dib.config.hostapt import without_credentials

LOG = logging.getLogger("dib.cache")
SOURCES_VAR = "DIB_APT_SOURCES_CONF"
INPUT_PREFIX = "archive:"
REMEMBERED = "archives.json"
FETCH_TIMEOUT = 15.0


@dataclass(frozen=True)
class AptSource:
    name: str
    uri: str
    suite: str
    components: tuple[str, ...]

    @property
    def flat(self) -> bool:
        """A flat repository ("deb URI DIR/") has no dists/ nor components."""
        return self.suite.endswith("/")

    @property
    def release_urls(self) -> tuple[str, str]:
        base = self.uri.rstrip("/") + "/"
        where = self.suite if self.flat else f"dists/{self.suite}/"
        return base + where + "InRelease", base + where + "Release"

    @property
    def label(self) -> str:
        """How the source is named in logs and in the remembered states."""
        return f"{without_credentials(self.uri)} {self.suite}"


def parse_sources(conf: str) -> list[AptSource]:
    """The binary sources of a DIB_APT_SOURCES_CONF value; deb-src lines,
    blank ones and sources without a URI are left out."""
    sources = []
    for line in conf.splitlines():
        name, sep, spec = line.strip().partition(":")
        if not sep:
            continue
        words = [w for w in spec.split() if not (w.startswith("[") or w.endswith("]"))]
        # an empty mirror leaves "deb SUITE COMPONENTS": no URI has no scheme
        if len(words) < 3 or words[0] != "deb" or ":" not in words[1]:
            continue
        sources.append(AptSource(name.strip(), words[1], words[2], tuple(words[3:])))
    return sources


def index_digest(release: str, source: AptSource, arch: str) -> str:
    """The part of a Release file that says what ``arch`` can install from
    ``source``: the SHA-256 lines of its Packages indexes (any compression,
    binary-ARCH and binary-all), in a stable order. The whole file when it
    lists none, as a flat repository's may not."""
    wanted = {"Packages"} if source.flat else {
        f"{component}/binary-{a}/Packages" for component in source.components
        for a in (arch, "all")}
    lines = sorted(line.strip() for line in _sha256_section(release)
                   if _index_name(line) in wanted)
    return _digest("\n".join(lines) if lines else release)


def _sha256_section(release: str) -> list[str]:
    section: list[str] = []
    inside = False
    for line in release.splitlines():
        if line.startswith("SHA256:"):
            inside = True
        elif inside and line.startswith(" "):
            section.append(line)
        elif inside:
            break
    return section


def _index_name(line: str) -> str:
    """``main/binary-amd64/Packages`` for any compression of that index."""
    fields = line.split()
    if len(fields) != 3:
        return ""
    name = fields[2]
    for suffix in (".xz", ".gz", ".bz2", ".lzma", ".zst"):
        name = name.removesuffix(suffix)
    return name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fetch_release(source: AptSource, timeout: float = FETCH_TIMEOUT) -> str:
    """The suite's InRelease, or its Release when there is no InRelease."""
    inrelease, release = source.release_urls
    try:
        return _read(inrelease, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
    return _read(release, timeout)


def _read(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode(errors="replace")


def archive_inputs(environment: Mapping[str, str], *, arch: str, offline: bool,
                   remembered: Path) -> dict[str, str]:
    """``archive:NAME`` → the state of each apt source the build names, for
    ``arch`` as Debian spells it.
    Read from the archive unless ``offline``; what cannot be read is taken
    from ``remembered`` (the last state read), and is "unknown" when that
    has none either."""
    sources = parse_sources(environment.get(SOURCES_VAR, ""))
    if not sources:
        return {}
    known = _load(remembered)
    read = {} if offline else _read_all(sources, arch)
    inputs = {}
    for source in sources:
        state = read.get(source.label)
        if state is None:
            state = known.get(source.label, {}).get("state", "unknown")
        inputs[f"{INPUT_PREFIX}{source.name}"] = state
    if read:
        known.update({label: {"state": state, "read": int(time.time())}
                      for label, state in read.items()})
        _save(remembered, known)
    return inputs


def _read_all(sources: list[AptSource], arch: str) -> dict[str, str]:
    """label → index digest for each source that answered; one warning for
    each that did not."""
    def one(source: AptSource) -> tuple[str, str | None]:
        try:
            return source.label, index_digest(fetch_release(source), source, arch)
        except (OSError, ValueError) as exc:
            LOG.warning("could not read the package index of %s (%s); cached steps "
                        "made from it as last read are reused", source.label,
                        getattr(exc, "reason", exc))
            return source.label, None
    with ThreadPoolExecutor(max_workers=min(8, len(sources))) as pool:
        return {label: state for label, state in pool.map(one, sources) if state}


def _load(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: Path, data: Mapping[str, dict]) -> None:
    """Written whole and renamed into place: builds sharing the cache read it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as exc:
        LOG.debug("could not remember the archives' state in %s: %s", path, exc)
