"""The Element: one directory in DIB's element format, read lazily."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from dib.elements import formats
from dib.elements.phases import HOOK_PHASE_NAMES
from dib.errors import ElementError

HOOK_NAME = re.compile(r"^[0-9A-Za-z_-]+$")
ENV_NAME = re.compile(r"^[0-9A-Za-z_.-]+$")


@dataclass(frozen=True)
class HookFile:
    element: str
    phase: str
    name: str
    path: Path
    skipped_reason: str | None = None   # why dib-run-parts would not run it

    @property
    def runs(self) -> bool:
        return self.skipped_reason is None


@dataclass(frozen=True)
class SourceRepository:
    name: str
    type: str
    destination: str
    location: str
    ref: str | None
    file: Path


class Element:
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Element({self.name!r}, {str(self.path)!r})"

    def _file(self, name: str) -> Path | None:
        candidate = self.path / name
        return candidate if candidate.is_file() else None

    @cached_property
    def deps(self) -> tuple[str, ...]:
        path = self._file("element-deps")
        return tuple(formats.read_lines(path)) if path else ()

    @cached_property
    def provides(self) -> tuple[str, ...]:
        path = self._file("element-provides")
        return tuple(formats.read_lines(path)) if path else ()

    def hooks(self, phase: str) -> list[HookFile]:
        """Every file in ``<phase>.d``, sorted as dib-run-parts sorts, each
        marked with why it would be skipped (if it would)."""
        directory = self.path / f"{phase}.d"
        if not directory.is_dir():
            return []
        out = []
        for entry in sorted(directory.iterdir(), key=lambda p: formats.sort_n_key(p.name)):
            out.append(HookFile(self.name, phase, entry.name, entry, _skip_reason(entry)))
        return out

    @cached_property
    def phases(self) -> tuple[str, ...]:
        return tuple(p for p in HOOK_PHASE_NAMES if (self.path / f"{p}.d").is_dir())

    @cached_property
    def environment_files(self) -> tuple[Path, ...]:
        return environment_files(self.path)

    @cached_property
    def package_installs_file(self) -> Path | None:
        return self._file("package-installs.yaml") or self._file("package-installs.json")

    @cached_property
    def package_installs(self) -> dict[str, Any] | None:
        path = self.package_installs_file
        if path is None:
            return None
        loader = formats.load_json if path.suffix == ".json" else formats.load_yaml
        data = loader(path, element=self.name)
        from dib.elements import package_installs
        package_installs.validate(data, element=self.name, path=str(path))
        return data or {}

    @cached_property
    def pkg_map(self) -> dict | None:
        path = self._file("pkg-map")
        if path is None:
            return None
        data = formats.load_json(path, element=self.name)
        return formats.check_pkg_map(data, element=self.name, path=path)

    @cached_property
    def svc_map(self) -> dict | None:
        path = self._file("svc-map")
        if path is None:
            return None
        data = formats.load_yaml(path, element=self.name)
        return formats.check_svc_map(data, element=self.name, path=path)

    @cached_property
    def source_repositories(self) -> tuple[SourceRepository, ...]:
        repos = []
        for path in sorted(self.path.glob("source-repository-*")):
            if not path.is_file():
                continue
            for line in path.read_text().splitlines():
                fields = line.split()
                if not fields or fields[0].startswith("#"):
                    continue
                if len(fields) < 4:
                    raise ElementError(
                        f"element '{self.name}': {path}: line '{line}' needs at least "
                        "<name> <type> <destination> <location> [<ref>]")
                repos.append(SourceRepository(fields[0], fields[1], fields[2], fields[3],
                                              fields[4] if len(fields) > 4 else None, path))
        return tuple(repos)

    @cached_property
    def block_device_files(self) -> dict[str, Path]:
        """'default' or an arch → the element's block-device YAML file."""
        out = {}
        for path in sorted(self.path.glob("block-device-*.yaml")):
            out[path.stem[len("block-device-"):]] = path
        return out

    @cached_property
    def test_elements(self) -> dict[str, Path]:
        directory = self.path / "test-elements"
        if not directory.is_dir():
            return {}
        return {p.name: p for p in sorted(directory.iterdir()) if p.is_dir()}

    @property
    def readme(self) -> Path | None:
        return self._file("README.rst")

    @property
    def bin_dir(self) -> Path | None:
        return self.path / "bin" if (self.path / "bin").is_dir() else None

    @property
    def static_dir(self) -> Path | None:
        return self.path / "static" if (self.path / "static").is_dir() else None

    @property
    def tests_dir(self) -> Path | None:
        return self.path / "tests" if (self.path / "tests").is_dir() else None

    def load_all(self) -> None:
        """Read and check every data file now, so errors surface before a build."""
        for attr in ("deps", "provides", "package_installs", "pkg_map", "svc_map",
                     "source_repositories"):
            getattr(self, attr)


def environment_files(directory: Path) -> tuple[Path, ...]:
    """The files of ``directory/environment.d`` (an element's, or the merged
    hooks tree's) that dib-run-parts sources: regular files (links followed)
    named ``[0-9A-Za-z_.-]+``, in ``sort -n`` order."""
    env_dir = directory / "environment.d"
    if not env_dir.is_dir():
        return ()
    files = [p for p in env_dir.iterdir() if p.is_file() and ENV_NAME.match(p.name)]
    return tuple(sorted(files, key=lambda p: formats.sort_n_key(p.name)))


def _skip_reason(path: Path) -> str | None:
    if not HOOK_NAME.match(path.name):
        return "name does not match ^[0-9A-Za-z_-]+$"
    if not path.is_file():
        return "not a regular file"
    if not os.access(path, os.X_OK):
        return "not executable"
    return None
