"""Which directories dib lint checks: element directories, found from the
paths given, ./elements or ELEMENTS_PATH; and the rules a project ignores."""
from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import Iterable, Mapping

from dib.elements.phases import HOOK_PHASE_NAMES
from dib.errors import ConfigError

ELEMENT_MARKERS = ("README.rst", "element-deps", "element-provides", "package-installs.yaml",
                   "package-installs.json", "pkg-map", "svc-map")


class LintUsageError(ConfigError):
    """Bad paths or arguments for dib lint (exit status 2)."""


def is_element_dir(path: Path) -> bool:
    if any((path / marker).is_file() for marker in ELEMENT_MARKERS):
        return True
    return any((path / f"{d}.d").is_dir() for d in (*HOOK_PHASE_NAMES, "environment"))


def collect_elements(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Each path is an element directory or a directory of elements."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise LintUsageError(f"dib lint: '{raw}' does not exist",
                                 hint="give element directories or directories of elements")
        if not path.is_dir():
            raise LintUsageError(f"dib lint: '{raw}' is not a directory",
                                 hint="give element directories or directories of elements")
        if is_element_dir(path):
            candidates = [path]
        else:
            candidates = [p for p in sorted(path.iterdir())
                          if p.is_dir() and not p.name.startswith((".", "_"))]
        for candidate in candidates:
            if all(candidate.resolve() != seen.resolve() for seen in out):
                out.append(candidate)
    return out


def default_paths(environ: Mapping[str, str] | None = None, cwd: Path | None = None
                  ) -> list[Path]:
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    if (cwd / "elements").is_dir():
        return [cwd / "elements"]
    paths = [Path(p) for p in environ.get("ELEMENTS_PATH", "").split(":") if p]
    if not paths:
        raise LintUsageError("dib lint: nothing to lint: no ./elements directory and "
                             "ELEMENTS_PATH is empty",
                             hint="pass element directories: dib lint PATH...")
    return paths


def project_ignores(cwd: Path | None = None) -> set[str]:
    """Rules ignored for the whole project: ``[dib-lint] ignore`` in tox.ini/setup.cfg."""
    cwd = cwd or Path.cwd()
    ignored: set[str] = set()
    for name in ("tox.ini", "setup.cfg"):
        path = cwd / name
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except configparser.Error:
            continue
        if parser.has_option("dib-lint", "ignore"):
            ignored.update(parser.get("dib-lint", "ignore").split())
    return ignored
