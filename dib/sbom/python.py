"""The Python distributions of an image: every ``*.dist-info`` directory
(and the older ``*.egg-info`` that Debian's own python3-* packages often
ship) in a ``site-packages`` or ``dist-packages`` directory, whether the
system's, a ``pip install`` into /usr/local, or a virtualenv under /opt or
elsewhere."""
from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path
from typing import Iterable

from dib.sbom import licenses, rootfs

# Where Python distributions may live; the walk does not follow symlinks, so
# a venv's lib64 -> lib is seen once.
SEARCH_ROOTS = ("usr", "opt", "srv", "var/lib", "root", "home")
_PACKAGE_DIRS = ("site-packages", "dist-packages")
# Trove classifiers that name one licence exactly.
_CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: zlib/libpng License": "Zlib",
    "License :: OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "License :: OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)":
        "LGPL-3.0-only",
}


@dataclass(frozen=True)
class PythonPackage:
    name: str
    version: str
    license: licenses.Expression
    location: str       # the directory holding the dist-info, in the image


def read_metadata(text: str, location: str) -> PythonPackage | None:
    """One distribution from the text of its METADATA file; None when it
    has no name or version (a broken install says nothing usable)."""
    headers = HeaderParser().parsestr(text, headersonly=True)
    name = (headers.get("Name") or "").strip()
    version = (headers.get("Version") or "").strip()
    if not name or not version:
        return None
    return PythonPackage(name=name, version=version, license=_license(headers),
                         location=location)


def _license(headers: Message) -> licenses.Expression:
    """PEP 639's License-Expression when given; else a License field that is
    one known name; else a classifier that names one licence exactly."""
    declared = (headers.get("License-Expression") or "").strip()
    if declared:
        return licenses.convert(declared)
    field = (headers.get("License") or "").strip()
    if field and "\n" not in field:
        known = licenses.spdx_id(field)
        if known:
            return licenses.Expression(known)
    found = [_CLASSIFIERS[c.strip()] for c in headers.get_all("Classifier") or []
             if c.strip() in _CLASSIFIERS]
    return licenses.combine([licenses.Expression(f) for f in found])


def find_packages(root: Path, listing: Iterable[rootfs.Directory] | None = None
                  ) -> list[PythonPackage]:
    """Every distribution in the tree, sorted by name, version and place.
    ``listing``: the tree's directories as ``rootfs.scan`` lists them
    (SEARCH_ROOTS among them), else scanned here."""
    found = []
    for directory in _dist_info_dirs(root, listing):
        metadata = _metadata_file(directory)
        if metadata is None:
            continue
        location = "/" + directory.parent.relative_to(root).as_posix()
        package = read_metadata(metadata.read_text(encoding="utf-8", errors="replace"),
                                location)
        if package is not None:
            found.append(package)
    return sorted(found, key=lambda p: (_normalised(p.name), p.version, p.location))


def _metadata_file(entry: Path) -> Path | None:
    """METADATA of a dist-info, PKG-INFO of an egg-info directory, or the
    egg-info itself when it is a file."""
    if entry.name.endswith(".dist-info"):
        candidate = entry / "METADATA"
    elif entry.is_dir() and not entry.is_symlink():
        candidate = entry / "PKG-INFO"
    else:
        candidate = entry
    return candidate if candidate.is_file() and not candidate.is_symlink() else None


def _dist_info_dirs(root: Path, listing: Iterable[rootfs.Directory] | None) -> list[Path]:
    """The distributions' metadata in every site-packages or dist-packages
    directory under SEARCH_ROOTS; one inside another's files is not looked at."""
    if listing is None:
        listing = rootfs.scan(root, SEARCH_ROOTS)
    out = []
    for directory in listing:
        if not _under(directory.path, SEARCH_ROOTS):
            continue
        parts = directory.path.split("/")
        if parts[-1] in _PACKAGE_DIRS and not set(parts[:-1]) & set(_PACKAGE_DIRS):
            out.extend(root / directory.path / name for name in directory.names
                       if name.endswith((".dist-info", ".egg-info")))
    return out


def _under(path: str, starts: Iterable[str]) -> bool:
    return any(path == start or path.startswith(start + "/") for start in starts)


def _normalised(name: str) -> str:
    """PEP 503's normalised project name, as purls for PyPI spell it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def purl_name(name: str) -> str:
    return _normalised(name)
