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
the tree's ``var/lib/dpkg/status``.

``boot`` is not checked here: ``dib test --boot`` boots the image in qemu
(:mod:`dib.testing.boot`) and checks it with :func:`check_boot`. Its keys,
all optional:

``marker``
    console text that means the guest is up (default ``login:``)
``timeout``
    seconds for the whole boot, commands included (default 300)
``firmware``
    ``bios`` (default) or ``uefi``
``memory``
    guest memory: MiB, or a size with a unit (``2G``)
``nics``
    virtio NICs on qemu's user network (default 0)
``grow``
    boot a copy grown to this virtual size (``4G``)
``seed``
    a NoCloud seed: ``{user-data: FILE, meta-data: FILE, network-config:
    FILE}``, files relative to the test-element's directory; ``user-data``
    is required, ``meta-data`` defaults to an instance-id and hostname
``login``
    how ``exec`` gets in: ``serial`` (default) or ``ssh``
``exec``
    commands run in the guest once the marker was seen, each a string (it
    must exit 0) or a mapping::

        exec:
          - "test -d /var/lib/apt"
          - run: systemctl is-active ssh
            output: active          # the whole output, surrounding whitespace aside
          - run: uname -a
            contains: [amd64, Debian]   # texts the output must contain
          - run: systemctl is-enabled nothing
            status: 1               # the exit status expected (default 0)

    stdout and stderr are one output. ``memory`` and ``grow`` read sizes as
    ``dib boot`` does: K, M, G, T are powers of 1024, a bare number is MiB
    for ``memory`` and GiB for ``grow``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from dib.errors import DibError

if TYPE_CHECKING:
    from dib.testing.boot import BootReport, BootSpec
    from dib.testing.imagetree import ImageTree

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
        "size": {"oneOf": [
            {"type": "integer", "minimum": 1},
            {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([KMGTkmgt](i?B)?)?\s*$"}]},
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
            "properties": {
                "marker": {"type": "string", "minLength": 1},
                "timeout": {"type": "number", "exclusiveMinimum": 0},
                "firmware": {"enum": ["bios", "uefi"]},
                "memory": {"$ref": "#/definitions/size"},
                "nics": {"type": "integer", "minimum": 0, "maximum": 8},
                "grow": {"$ref": "#/definitions/size"},
                "login": {"enum": ["serial", "ssh"]},
                "seed": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["user-data"],
                    "properties": {name: {"$ref": "#/definitions/path"}
                                   for name in ("user-data", "meta-data", "network-config")},
                },
                "exec": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"oneOf": [
                        {"type": "string", "minLength": 1},
                        {"type": "object",
                         "additionalProperties": False,
                         "required": ["run"],
                         "properties": {
                             "run": {"type": "string", "minLength": 1},
                             "output": {"type": "string"},
                             "contains": {"oneOf": [
                                 {"type": "string", "minLength": 1},
                                 {"type": "array", "minItems": 1,
                                  "items": {"type": "string", "minLength": 1}}]},
                             "status": {"type": "integer", "minimum": 0, "maximum": 255},
                         }},
                    ]},
                },
            },
        },
    },
}

DEFAULT_BOOT_TIMEOUT = 300


_HINTS = {
    "boot": "boot keys are marker, timeout, firmware, memory, nics, grow, seed, login, exec; "
            "an exec entry is a command or {run, output, contains, status}; sizes look "
            "like 2G; see docs/element-author-guide.md",
}


class ExpectationError(DibError):
    """An expect.yaml file is malformed."""


def _most_telling(err: Any) -> Any:
    """For a value no branch of a oneOf accepts, the complaint of the branch
    of the right type ("'outptu' was unexpected", not "is not a string")."""
    while err.context:
        same_type = [e for e in err.context if e.validator != "type"] or list(err.context)
        err = max(same_type, key=lambda e: len(e.absolute_path))
    return err


def validate(spec: Any, *, source: str = EXPECT_FILE) -> dict[str, Any]:
    """Check a parsed expectations document; return it (``{}`` for empty)."""
    import jsonschema
    if spec is None:
        return {}
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(spec),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = _most_telling(errors[0])
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        top = str(err.absolute_path[0]) if err.absolute_path else ""
        raise ExpectationError(f"{source}: {where}: {err.message}", hint=_HINTS.get(
            top, "keys are files_present, files_absent, file_contains, modes, "
                 "packages_installed, packages_absent, boot; see "
                 "docs/element-author-guide.md"))
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
    spec = validate(data, source=str(path))
    boot_plan(spec, path.parent, source=str(path))   # seed files and sizes, before any build
    return spec


def boot_expectation(spec: Mapping[str, Any]) -> tuple[str, float] | None:
    """(marker, timeout seconds) when the case asks for a boot check."""
    boot = spec.get("boot")
    if not boot:
        return None
    return boot["marker"], float(boot.get("timeout", DEFAULT_BOOT_TIMEOUT))


@dataclass(frozen=True)
class ExecCheck:
    """One ``boot.exec`` entry: the command, its whole output (None: any),
    texts its output must contain, the exit status it must end with."""

    run: str
    output: str | None = None
    contains: tuple[str, ...] = ()
    status: int = 0


@dataclass
class BootPlan:
    """``boot:`` of an expect.yaml, read: how to boot and what to check."""

    marker: str = "login:"
    timeout: float = float(DEFAULT_BOOT_TIMEOUT)
    firmware: str = "bios"
    memory_mb: int | None = None
    nics: int = 0
    grow: int | None = None
    seed: dict[str, Path] | None = None
    login: str = "serial"
    checks: list[ExecCheck] = field(default_factory=list)

    def spec(self, image: Path, *, log_path: Path | None = None) -> "BootSpec":
        from dib.testing.boot import BootSpec
        return BootSpec(image=image, firmware=self.firmware, memory_mb=self.memory_mb,
                        nics=self.nics, seed=self.seed, grow=self.grow,
                        exec=[check.run for check in self.checks], login=self.login,
                        expect=self.marker, timeout=self.timeout, log_path=log_path)


def boot_plan(spec: Mapping[str, Any], case_dir: str | os.PathLike | None = None, *,
              source: str = EXPECT_FILE) -> BootPlan:
    """Read ``spec['boot']`` (validated) into a BootPlan; seed files are
    relative to ``case_dir`` and must exist. No ``boot`` key: the defaults."""
    from dib.testing.boot import parse_size
    boot = spec.get("boot") or {}
    plan = BootPlan(marker=boot.get("marker", "login:"),
                    timeout=float(boot.get("timeout", DEFAULT_BOOT_TIMEOUT)),
                    firmware=boot.get("firmware", "bios"), nics=int(boot.get("nics", 0)),
                    login=boot.get("login", "serial"))
    for key, bare_unit in (("memory", "M"), ("grow", "G")):
        if key in boot:
            try:
                size = parse_size(boot[key], what=key, bare_unit=bare_unit)
            except DibError as exc:
                raise ExpectationError(f"{source}: boot/{key}: {exc.message}",
                                       hint=exc.hint) from None
            if key == "memory":
                plan.memory_mb = size // 1024 ** 2
            else:
                plan.grow = size
    if "seed" in boot:
        base = Path(case_dir) if case_dir is not None else Path.cwd()
        plan.seed = {}
        for name, relative in boot["seed"].items():
            path = base / relative
            if not path.is_file():
                raise ExpectationError(f"{source}: boot/seed/{name}: {path} does not exist",
                                       hint="seed files are relative to the test-element's "
                                            "directory")
            plan.seed[name] = path
    for entry in boot.get("exec", []):
        if isinstance(entry, str):
            plan.checks.append(ExecCheck(entry))
        else:
            contains = entry.get("contains", ())
            plan.checks.append(ExecCheck(
                entry["run"], entry.get("output"),
                (contains,) if isinstance(contains, str) else tuple(contains),
                int(entry.get("status", 0))))
    return plan


def check_boot(report: "BootReport", plan: BootPlan) -> list[str]:
    """Compare a boot with the plan's marker and exec checks; one message per failure."""
    if not report.reached:
        return [f"'{plan.marker}' not seen on the console within {plan.timeout:g} s "
                f"({report.exit_reason})"]
    if report.exec_error:
        return [f"exec: {report.exec_error}"]
    failures = []
    for check, result in zip(plan.checks, report.exec_results):
        shown = _excerpt(result.output)
        if result.status is None:
            failures.append(f"exec {check.run!r}: did not finish")
            continue
        if result.status != check.status:
            failures.append(f"exec {check.run!r}: exit status {result.status}, expected "
                            f"{check.status} (output: {shown})")
        if check.output is not None and result.output.strip() != check.output.strip():
            failures.append(f"exec {check.run!r}: output is {shown}, expected "
                            f"{check.output.strip()!r}")
        for text in check.contains:
            if text not in result.output:
                failures.append(f"exec {check.run!r}: output does not contain {text!r} "
                                f"(output: {shown})")
    return failures


def _excerpt(text: str, limit: int = 300) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def installed_packages(tree: "str | os.PathLike | ImageTree") -> dict[str, str]:
    """Package → version for every package dpkg considers installed in the tree."""
    from dib.sbom import dpkg
    text = _as_tree(tree).read_text(f"{dpkg.ADMIN_DIR}/status")
    return {p.name: p.version for p in dpkg.parse_status(text or "")
            if p.state in dpkg.INSTALLED_STATES}


def _as_tree(tree: "str | os.PathLike | ImageTree") -> "ImageTree":
    from dib.testing.imagetree import DirectoryTree
    return DirectoryTree(tree) if isinstance(tree, (str, os.PathLike)) else tree


def check_expectations(tree: "str | os.PathLike | ImageTree",
                       spec: Mapping[str, Any] | str | os.PathLike) -> list[str]:
    """Compare a built tree (a directory, or an ``imagetree.TarTree``) with
    expectations; one message per failure.

    ``spec`` is a parsed mapping or a path to ``expect.yaml``. An empty list
    means everything matched. ``boot`` is ignored here.
    """
    if not isinstance(spec, Mapping):
        spec = load_expectations(spec)
    else:
        spec = validate(dict(spec))
    if isinstance(tree, (str, os.PathLike)) and not Path(tree).is_dir():
        return [f"tree {tree} does not exist"]
    image = _as_tree(tree)
    failures: list[str] = []

    def shown(path: str) -> str:
        return "/" + path.lstrip("/")

    for path in spec.get("files_present", []):
        if not image.lexists(path):
            failures.append(f"{shown(path)}: expected to exist, but it is missing")
    for path in spec.get("files_absent", []):
        if image.lexists(path):
            failures.append(f"{shown(path)}: expected to be absent, but it exists")
    for path, wanted in spec.get("file_contains", {}).items():
        content = image.read_text(path)
        if content is None:
            failures.append(f"{shown(path)}: expected to contain text, but it is "
                            "missing or not a regular file")
            continue
        for text in [wanted] if isinstance(wanted, str) else wanted:
            if text not in content:
                failures.append(f"{shown(path)}: does not contain {text!r}")
    for path, mode in spec.get("modes", {}).items():
        got = image.lmode(path)
        if got is None:
            failures.append(f"{shown(path)}: expected mode {mode}, but it is missing")
            continue
        if got != int(mode, 8):
            failures.append(f"{shown(path)}: mode is {got:04o}, expected {int(mode, 8):04o}")
    wants_packages = spec.get("packages_installed") or spec.get("packages_absent")
    if wants_packages:
        packages = installed_packages(image)
        if not image.is_file("var/lib/dpkg/status") and spec.get("packages_installed"):
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
