"""Files that elements put into an image outside any package.

The honest, simple answer: regular files under /usr, /etc and /opt that no
dpkg file list names, less those the system makes for itself (caches,
account databases, machine identity) and what the SBOM already covers
another way (Python distributions, the manifests). Each is listed with its
digests; an element is named only when the element's own files hold the
same content at that path (see ``element_sources``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from dib.sbom import rootfs

SCAN_DIRS = ("usr", "etc", "opt")
# Made by maintainer scripts, triggers or the build itself, on every system.
GENERATED = frozenset("""
etc/machine-id etc/ld.so.cache etc/.pwd.lock etc/adjtime etc/mtab etc/resolv.conf
etc/hostname etc/passwd etc/passwd- etc/group etc/group- etc/shadow etc/shadow-
etc/gshadow etc/gshadow- etc/subuid etc/subuid- etc/subgid etc/subgid-
etc/ssl/certs/ca-certificates.crt usr/lib/locale/locale-archive etc/security/opasswd
usr/share/info/dir usr/share/info/dir.old etc/apt/trusted.gpg~
""".split())
_GENERATED_PATTERNS = (
    re.compile(r"^etc/ssh/ssh_host_[a-z0-9]+_key(\.pub)?$"),   # made at install or boot
    re.compile(r"\.pyc$"),
    re.compile(r"^usr/lib/modules/[^/]+/modules\.[a-z.]+$"),    # depmod's indexes
    re.compile(r"^(usr/lib|etc)/udev/hwdb\.bin$"),
)
_SKIPPED_SUFFIXES = (".dist-info", ".egg-info")    # listed as Python packages
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LooseFile:
    path: str               # as the image sees it: /etc/foo
    sha256: str
    sha1: str
    element: str | None = None


def is_generated(relative: str) -> bool:
    return relative in GENERATED or any(p.search(relative) for p in _GENERATED_PATTERNS)


def loose_files(root: Path, owned: set[str], skip: Iterable[str] = (),
                sources: dict[str, dict[str, str]] | None = None,
                listing: Iterable[rootfs.Directory] | None = None,
                memo: DigestMemo | None = None) -> list[LooseFile]:
    """Regular files under SCAN_DIRS that ``owned`` (relative paths) does
    not hold, sorted by path. ``skip`` are directories (relative) left out
    whole; ``sources`` maps an image path to {element: sha256} of the
    element files that install there. ``listing``: the tree's directories
    as ``rootfs.scan`` lists them (SCAN_DIRS among them), else scanned here;
    ``memo``: digests an earlier SBOM read."""
    skipped = {s.strip("/") for s in skip}
    if listing is None:
        listing = rootfs.scan(root, SCAN_DIRS)
    left_out: set[str] = set()
    found = []
    for directory in listing:
        parent, _, name = directory.path.rpartition("/")
        if (directory.path.split("/", 1)[0] not in SCAN_DIRS or parent in left_out
                or directory.path in skipped or name.endswith(_SKIPPED_SUFFIXES)):
            left_out.add(directory.path)
            continue
        for name in sorted(directory.regular):
            relative = directory.below(name)
            if relative in owned or is_generated(relative):
                continue
            found.append(_describe(os.path.join(root, relative), "/" + relative,
                                   (sources or {}).get(relative), memo))
    return sorted(found, key=lambda f: f.path)


def _describe(path: str, image_path: str, candidates: dict[str, str] | None,
              memo: DigestMemo | None = None) -> LooseFile:
    sha256, sha1 = memo.digests(path, image_path) if memo is not None else digests(path)
    element = None
    if candidates:
        matching = sorted(name for name, digest in candidates.items() if digest == sha256)
        # Two elements shipping the same bytes to one place: either may have
        # put it there, so neither is named.
        element = matching[0] if len(matching) == 1 else None
    return LooseFile(path=image_path, sha256=sha256, sha1=sha1, element=element)


class DigestMemo:
    """Digests of files read by an earlier SBOM, by what ``lstat`` says of
    the file (path, inode, size, mtime, ctime): most loose files of a rebuilt
    image are those of the cached layers below the step that changed, and
    a file written anew has another ctime. Kept as JSON at ``path``."""

    #: at most this many files are remembered, the last build's first
    LIMIT = 200_000

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.known: dict[str, list[str]] = {}
        self.used: dict[str, list[str]] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_text())
            except (OSError, ValueError):
                loaded = {}
            if isinstance(loaded, dict):
                self.known = loaded

    @staticmethod
    def _key(path: str, st: os.stat_result) -> str:
        return f"{path}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"

    def digests(self, path: str, image_path: str) -> tuple[str, str]:
        """The digests of the file at ``path``, ``image_path`` in the image
        (the tree is mounted somewhere else in every build)."""
        key = self._key(image_path, os.lstat(path))
        found = self.known.get(key)
        if not (isinstance(found, list) and len(found) == 2):
            found = list(digests(path))
        self.used[key] = found
        return found[0], found[1]

    def save(self) -> None:
        """What this build read first, then what earlier ones did, up to LIMIT;
        a memo that cannot be written only costs the next build time."""
        if self.path is None:
            return
        kept = dict(self.used)
        for key, value in self.known.items():
            if len(kept) >= self.LIMIT:
                break
            kept.setdefault(key, value)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            partial.write_text(json.dumps(kept))
            os.replace(partial, self.path)
        except OSError:
            pass


def digests(path: str) -> tuple[str, str]:
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha256.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


# What the shipped elements copy from an element into the image verbatim:
# install-static copies static/ to /, install-bin copies bin/ to
# /usr/local/bin, pkg-map copies each element's pkg-map file.
ELEMENT_INSTALL_DIRS = (("static", ""), ("bin", "usr/local/bin"))


def element_sources(elements: Iterable[tuple[str, Path]]) -> dict[str, dict[str, str]]:
    """Image path (relative) → {element: sha256} for every file an element
    ships to be copied into the image as it is."""
    out: dict[str, dict[str, str]] = {}
    for name, element_dir in elements:
        for source, image_path in _shipped_files(name, Path(element_dir)):
            out.setdefault(image_path, {})[name] = digests(str(source))[0]
    return out


def _shipped_files(name: str, element_dir: Path) -> list[tuple[Path, str]]:
    found = []
    pkg_map = element_dir / "pkg-map"
    if pkg_map.is_file() and not pkg_map.is_symlink():
        found.append((pkg_map, f"usr/share/pkg-map/{name}"))
    for subdir, target in ELEMENT_INSTALL_DIRS:
        base = element_dir / subdir
        for directory, _dirs, names in os.walk(base):
            for file_name in names:
                path = Path(directory) / file_name
                if path.is_symlink() or not path.is_file():
                    continue
                inside = path.relative_to(base).as_posix()
                found.append((path, f"{target}/{inside}" if target else inside))
    return found
