"""Expectations for a test-element's built tree: ``test-elements/<case>/expect.yaml``.

Every key is optional::

    files_present: [/etc/motd, /usr/local/bin/banner]
    files_absent: [/tmp/dib-test-should-fail]
    file_contains:
      /etc/motd: "Welcome"
    modes:
      /etc/motd: "0644"
    packages_installed: [figlet]
    packages_absent: [nano]
    boot:
      marker: "motd-banner-ok"
      timeout: 120

Paths are inside the image (a leading ``/`` is optional). ``packages_*`` read
the tree's ``var/lib/dpkg/status``. ``boot`` is not checked here: ``dib test
--boot`` waits for ``marker`` on the guest console for ``timeout`` seconds.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Mapping

from dib.errors import DibError

EXPECT_FILE = "expect.yaml"

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "dib test-element expectations (expect.yaml)",
    "type": "object",
    "additionalProperties": False,
    "definitions": {
        "path": {"type": "string", "minLength": 1},
        "paths": {"type": "array", "items": {"$ref": "#/definitions/path"},
                  "uniqueItems": True},
        "package": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9.+:~_-]*$"},
    },
    "properties": {
        "files_present": {"$ref": "#/definitions/paths"},
        "files_absent": {"$ref": "#/definitions/paths"},
        "file_contains": {
            "type": "object",
            "additionalProperties": {
                "oneOf": [{"type": "string"},
                          {"type": "array", "items": {"type": "string"}}]},
        },
        "modes": {
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": r"^0?[0-7]{3,4}$"},
        },
        "packages_installed": {"type": "array", "items": {"$ref": "#/definitions/package"}},
        "packages_absent": {"type": "array", "items": {"$ref": "#/definitions/package"}},
        "boot": {
            "type": "object",
            "additionalProperties": False,
            "required": ["marker"],
            "properties": {
                "marker": {"type": "string", "minLength": 1},
                "timeout": {"type": "number", "exclusiveMinimum": 0},
            },
        },
    },
}

DEFAULT_BOOT_TIMEOUT = 300


class ExpectationError(DibError):
    """An expect.yaml file is malformed."""


def validate(spec: Any, *, source: str = EXPECT_FILE) -> dict[str, Any]:
    """Check a parsed expectations document; return it (``{}`` for empty)."""
    import jsonschema
    if spec is None:
        return {}
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(spec),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ExpectationError(f"{source}: {where}: {err.message}",
                               hint="keys are files_present, files_absent, file_contains, "
                                    "modes, packages_installed, packages_absent, boot")
    return dict(spec)


def load_expectations(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``expect.yaml`` (a file, or a test-element directory)."""
    import yaml
    path = Path(path)
    if path.is_dir():
        path = path / EXPECT_FILE
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ExpectationError(f"{path}{line}: invalid YAML: "
                               f"{getattr(exc, 'problem', None) or exc}") from None
    return validate(data, source=str(path))


def boot_expectation(spec: Mapping[str, Any]) -> tuple[str, float] | None:
    """(marker, timeout seconds) when the case asks for a boot check."""
    boot = spec.get("boot")
    if not boot:
        return None
    return boot["marker"], float(boot.get("timeout", DEFAULT_BOOT_TIMEOUT))


def installed_packages(tree: str | os.PathLike) -> dict[str, str]:
    """Package → version for every package dpkg considers installed in the tree."""
    status = Path(tree) / "var/lib/dpkg/status"
    if not status.is_file():
        return {}
    out: dict[str, str] = {}
    for stanza in status.read_text(errors="replace").split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        name = fields.get("package")
        state = fields.get("status", "").split()
        if name and len(state) == 3 and state[2] in ("installed", "half-configured",
                                                     "triggers-awaited",
                                                     "triggers-pending"):
            out[name] = fields.get("version", "")
    return out


def check_expectations(tree: str | os.PathLike, spec: Mapping[str, Any] | str | os.PathLike
                       ) -> list[str]:
    """Compare a built tree with expectations; one message per failure.

    ``spec`` is a parsed mapping or a path to ``expect.yaml``. An empty list
    means everything matched. ``boot`` is ignored here.
    """
    if not isinstance(spec, Mapping):
        spec = load_expectations(spec)
    else:
        spec = validate(dict(spec))
    tree = Path(tree)
    if not tree.is_dir():
        return [f"tree {tree} does not exist"]
    failures: list[str] = []

    def inside(path: str) -> Path:
        return tree / path.lstrip("/")

    def shown(path: str) -> str:
        return "/" + path.lstrip("/")

    for path in spec.get("files_present", []):
        if not os.path.lexists(inside(path)):
            failures.append(f"{shown(path)}: expected to exist, but it is missing")
    for path in spec.get("files_absent", []):
        if os.path.lexists(inside(path)):
            failures.append(f"{shown(path)}: expected to be absent, but it exists")
    for path, wanted in spec.get("file_contains", {}).items():
        target = inside(path)
        if not target.is_file():
            failures.append(f"{shown(path)}: expected to contain text, but it is "
                            "missing or not a regular file")
            continue
        content = target.read_text(errors="replace")
        for text in [wanted] if isinstance(wanted, str) else wanted:
            if text not in content:
                failures.append(f"{shown(path)}: does not contain {text!r}")
    for path, mode in spec.get("modes", {}).items():
        target = inside(path)
        if not os.path.lexists(target):
            failures.append(f"{shown(path)}: expected mode {mode}, but it is missing")
            continue
        got = stat.S_IMODE(target.lstat().st_mode)
        if got != int(mode, 8):
            failures.append(f"{shown(path)}: mode is {got:04o}, expected {int(mode, 8):04o}")
    wants_packages = spec.get("packages_installed") or spec.get("packages_absent")
    if wants_packages:
        packages = installed_packages(tree)
        if not (tree / "var/lib/dpkg/status").is_file() and spec.get("packages_installed"):
            failures.append("var/lib/dpkg/status is missing: cannot check "
                            "packages_installed")
        else:
            for name in spec.get("packages_installed", []):
                if name not in packages:
                    failures.append(f"package {name}: expected installed, but it is not")
        for name in spec.get("packages_absent", []):
            if name in packages:
                failures.append(f"package {name}: expected absent, but version "
                                f"{packages[name] or '?'} is installed")
    return failures
