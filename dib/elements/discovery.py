"""Finding elements: ELEMENTS_PATH first, then packages' ``dib.elements`` entry points."""
from __future__ import annotations

import difflib
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from dib.elements.model import Element
from dib.errors import ElementError

LOG = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "dib.elements"
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _packaged_dir(package: str, source_name: str) -> Path:
    """Where a data directory shipped with dib lives: installed as a package
    directory, or beside ``dib/`` in a source checkout."""
    spec = importlib.util.find_spec(package)
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return _SOURCE_ROOT / source_name


def shipped_elements_dir() -> Path:
    """The elements that come with dib (the target of our own entry point)."""
    return _packaged_dir("dib_elements", "elements")


def shipped_hooks_dir() -> Path:
    """Helper commands hooks call (dib-run-parts, install-packages, pkg-map, ...)."""
    return _packaged_dir("dib_hooks", "hooks")


def entry_point_dirs() -> list[Path]:
    """Element directories registered by installed packages.

    An entry point may name a directory (str or Path), a callable that returns
    one, or a module (its directory is used).
    """
    dirs: list[Path] = []
    try:
        from stevedore import ExtensionManager
        manager = ExtensionManager(ENTRY_POINT_GROUP, invoke_on_load=False,
                                   on_load_failure_callback=_report_bad_entry_point)
        extensions = sorted(manager.extensions, key=lambda ext: ext.name)
    except ImportError:
        extensions = []
    for ext in extensions:
        target = ext.plugin
        if callable(target):
            target = target()
        elif hasattr(target, "__file__"):
            target = Path(target.__file__).parent
        dirs.append(Path(target))
    shipped = shipped_elements_dir()
    if shipped.is_dir() and all(d.resolve() != shipped.resolve() for d in dirs):
        dirs.append(shipped)
    return dirs


def _report_bad_entry_point(manager, entry_point, exc) -> None:
    LOG.warning("ignoring element entry point %s: %s", entry_point, exc)


def element_paths(environ: Mapping[str, str]) -> list[Path]:
    """The search path: ELEMENTS_PATH entries (earliest wins), then entry points."""
    paths = [Path(p) for p in environ.get("ELEMENTS_PATH", "").split(":") if p]
    for directory in entry_point_dirs():
        if all(directory.resolve() != p.resolve() for p in paths if p.exists()):
            paths.append(directory)
    return paths


@dataclass
class ElementIndex:
    """All elements found on a search path, by name."""

    elements: dict[str, Element] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)
    overridden: list[tuple[Path, Path]] = field(default_factory=list)  # (winner, loser)

    def __contains__(self, name: str) -> bool:
        return name in self.elements

    def __getitem__(self, name: str) -> Element:
        return self.elements[name]

    def names(self) -> list[str]:
        return sorted(self.elements)

    def get(self, name: str, *, wanted_by: str | None = None) -> Element:
        try:
            return self.elements[name]
        except KeyError:
            raise unknown_element(name, self.elements, wanted_by=wanted_by) from None


def unknown_element(name: str, known: Iterable[str], *, wanted_by: str | None = None
                    ) -> ElementError:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    where = f" (required by '{wanted_by}')" if wanted_by else ""
    hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close else
            "check the name, or add the directory that holds it to ELEMENTS_PATH")
    return ElementError(f"element '{name}' not found{where}", hint=hint)


def find_elements(paths: Iterable[Path | str]) -> ElementIndex:
    index = ElementIndex(paths=[Path(p) for p in paths])
    for directory in index.paths:
        if not directory.is_dir():
            raise ElementError(f"ELEMENTS_PATH entry '{directory}' is not a directory",
                               hint="remove it from ELEMENTS_PATH or create it")
        for entry in sorted(directory.iterdir()):
            if not entry.is_dir() or entry.name.startswith((".", "_")):
                continue
            existing = index.elements.get(entry.name)
            if existing is not None:
                if existing.path.resolve() != entry.resolve():
                    LOG.warning("element '%s' in %s overrides the one in %s", entry.name,
                                existing.path, entry)
                    index.overridden.append((existing.path, entry))
                continue
            index.elements[entry.name] = Element(entry.name, entry)
    return index


def discover(environ: Mapping[str, str] | None = None) -> ElementIndex:
    return find_elements(element_paths(os.environ if environ is None else environ))
