"""Readers for element data files; every problem names the file and line."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from dib.errors import ElementError

_SORT_N = re.compile(r"^\s*(-?)(\d*)(\.\d+)?")


def sort_n_key(name: str) -> tuple[float, bytes]:
    """The order of ``LC_ALL=C sort -n``: leading number (none counts as 0), then bytes."""
    match = _SORT_N.match(name)
    sign, digits, fraction = match.groups() if match else ("", "", None)
    number = float((digits or "0") + (fraction or ""))
    if sign and (digits or fraction):
        number = -number
    return number, name.encode()


def read_lines(path: Path) -> list[str]:
    """element-deps / element-provides: one name a line, blanks dropped, order kept."""
    seen: dict[str, None] = {}
    for line in path.read_text().splitlines():
        name = line.strip()
        if name:
            seen.setdefault(name, None)
    return list(seen)


def load_yaml(path: Path, *, element: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ElementError(f"element '{element}': {where}: invalid YAML: {problem}",
                           hint="fix the syntax of this file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ElementError(f"element '{element}': cannot read {path}: {exc}") from None


def load_json(path: Path, *, element: str) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ElementError(f"element '{element}': {path}:{exc.lineno}: invalid JSON: "
                           f"{exc.msg} (column {exc.colno})",
                           hint="fix the syntax of this file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ElementError(f"element '{element}': cannot read {path}: {exc}") from None


PKG_MAP_SECTIONS = ("release", "distro", "family", "default")


def check_pkg_map(data: Any, *, element: str, path: Path) -> dict:
    """pkg-map: {release: {distro: {release: {name: pkg}}}, distro: {d: {...}},
    family: {f: {...}}, default: {...}}; mapped values are strings."""
    def fail(problem: str) -> ElementError:
        return ElementError(f"element '{element}': {path}: {problem}",
                            hint="the format is described in the pkg-map element's README.rst")
    if not isinstance(data, dict):
        raise fail("must be a JSON object")
    for section, body in data.items():
        if section not in PKG_MAP_SECTIONS:
            raise fail(f"unknown section '{section}'; use {', '.join(PKG_MAP_SECTIONS)}")
        depth = {"release": 3, "distro": 2, "family": 2, "default": 1}[section]
        _check_map_depth(body, depth, f"{section}", fail)
    return data


def _check_map_depth(body: Any, depth: int, where: str, fail) -> None:
    if not isinstance(body, dict):
        raise fail(f"'{where}' must be an object")
    for key, value in body.items():
        if depth == 1:
            if not isinstance(value, str):
                raise fail(f"'{where}.{key}' must map to a package name string")
        else:
            _check_map_depth(value, depth - 1, f"{where}.{key}", fail)


def check_svc_map(data: Any, *, element: str, path: Path) -> dict:
    """svc-map: {service: {default|<distro>|<family>: name}}."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ElementError(f"element '{element}': {path}: must be a YAML mapping of "
                           "service name to per-distro names")
    for service, names in data.items():
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            raise ElementError(f"element '{element}': {path}: service '{service}' must map "
                               "distro/family/default to a service name string")
    return data
