"""The package-installs data model: schema, validation and the squash.

An element's ``package-installs.yaml`` (or ``.json``) maps a package name to
nothing, to one set of options, or to a list of alternative option sets::

    curl:
    grub-pc:
      arch: amd64,i386
    python3-dev:
      build-only: true
    linux-image-cloud-amd64:
      - when: DIB_CLOUD_KERNEL = 1
        arch: amd64

``squash`` folds the files of every element of an image into the one JSON
document that ``package-installs-v2`` reads inside the image::

    {phase: {"install": [[pkg, element], ...], "uninstall": [[pkg, element], ...]}}

This module imports only the standard library, jsonschema, dib.errors and the
phase table.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import jsonschema

from dib.elements.phases import HOOK_PHASES
from dib.errors import ElementError

#: the hook directories a package-installs entry may name
PHASES = tuple(p.directory for p in HOOK_PHASES if p.package_installs)
DEFAULT_PHASE = "install.d"
INSTALLTYPES = ("source", "package")

PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "phase": {"enum": list(PHASES)},
        "uninstall": {"type": "boolean"},
        "build-only": {"type": "boolean"},
        "installtype": {"enum": list(INSTALLTYPES)},
        "arch": {"type": "string", "minLength": 1},
        "not-arch": {"type": "string", "minLength": 1},
        "dib_python_version": {"type": ["string", "integer"]},
        "when": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}},
            ],
        },
    },
    "not": {"required": ["arch", "not-arch"]},
}

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "package-installs",
    "description": "Packages an element installs: name -> null | options | [options, ...]",
    "type": "object",
    "propertyNames": {"type": "string", "minLength": 1},
    "additionalProperties": {
        "oneOf": [
            {"type": "null"},
            {"$ref": "#/definitions/params"},
            {"type": "array", "items": {"$ref": "#/definitions/params"}},
        ],
    },
    "definitions": {"params": PARAMS_SCHEMA},
}

_WHEN_RE = re.compile(r"^\s*(?P<var>\w+)\s*(?P<op>!=|=)\s*(?P<val>.*?)\s*$")

_KEY_HELP = {
    "phase": "one of " + ", ".join(PHASES) + " (default install.d)",
    "uninstall": "true or false",
    "build-only": "true or false",
    "installtype": "'source' or 'package'",
    "arch": "a comma separated list of architectures, e.g. 'amd64,arm64'",
    "not-arch": "a comma separated list of architectures, e.g. 'ppc64el'",
    "dib_python_version": "2 or 3",
    "when": "'VAR = value', 'VAR != value' or a list of those (all must hold)",
}

_PARAMS_VALIDATOR = jsonschema.Draft7Validator(PARAMS_SCHEMA)


def _fail(element: str, path: str, detail: str, fix: str) -> None:
    raise ElementError(f"element '{element}': {path}: {detail}", hint=fix)


def _param_sets(value: Any) -> list[Any]:
    if value is None:
        return [{}]
    if isinstance(value, list):
        return value or [{}]
    return [value]


def validate(data: Any, *, element: str, path: str) -> None:
    """Check one parsed package-installs file; raise ElementError if bad.

    The message names the element, the file, the package and the offending
    key or value, and the hint says what is accepted.
    """
    if data is None:
        return
    if not isinstance(data, dict):
        _fail(element, path, f"expected a mapping of package name to options, "
              f"got {type(data).__name__}",
              "write one package name per line, e.g. 'curl:' or "
              "'curl: {phase: pre-install.d}'")
    for pkg, value in data.items():
        if not isinstance(pkg, str) or not pkg.strip():
            _fail(element, path, f"package name {pkg!r} is not a non-empty string",
                  "quote the package name")
        if value is not None and not isinstance(value, (dict, list)):
            _fail(element, path, f"package '{pkg}': options must be empty, a mapping "
                  f"or a list of mappings, got {value!r}",
                  "write e.g. '" + pkg + ": {phase: install.d}' or just '" + pkg + ":'")
        for index, params in enumerate(_param_sets(value)):
            where = f"package '{pkg}'" + (f" (entry {index + 1})" if isinstance(value, list) else "")
            _validate_params(params, element=element, path=path, where=where)
    # Backstop: the whole document against the published schema.
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(data),
                    key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        loc = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        _fail(element, path, f"{loc}: {err.message}", "see the package-installs "
              "format in the element author guide")


def _validate_params(params: Any, *, element: str, path: str, where: str) -> None:
    if not isinstance(params, dict):
        _fail(element, path, f"{where}: each option set must be a mapping, got {params!r}",
              "write e.g. '- {phase: install.d}'")
    unknown = sorted(k for k in params if k not in PARAMS_SCHEMA["properties"])
    if unknown:
        _fail(element, path, f"{where}: unknown key '{unknown[0]}'",
              "allowed keys are " + ", ".join(PARAMS_SCHEMA["properties"]))
    if "arch" in params and "not-arch" in params:
        _fail(element, path, f"{where}: 'arch' and 'not-arch' are both given",
              "keep only one of them: 'arch' lists where to install, "
              "'not-arch' where not to")
    for err in _PARAMS_VALIDATOR.iter_errors(params):
        if err.absolute_path:
            key = str(err.absolute_path[0])
            _fail(element, path, f"{where}: bad value {params.get(key)!r} for key '{key}'",
                  f"'{key}' must be {_KEY_HELP.get(key, 'valid')}")
        _fail(element, path, f"{where}: {err.message}", "see the package-installs format")
    when = params.get("when")
    if when is not None:
        for item in ([when] if isinstance(when, str) else when):
            if not _WHEN_RE.match(item):
                _fail(element, path, f"{where}: malformed 'when' condition {item!r}",
                      "write 'VAR = value' or 'VAR != value'")
    if "dib_python_version" in params and str(params["dib_python_version"]) not in ("2", "3"):
        _fail(element, path, f"{where}: bad value {params['dib_python_version']!r} "
              "for key 'dib_python_version'", "'dib_python_version' must be 2 or 3")


def _arch_list(value: str) -> list[str]:
    return [a.strip() for a in value.split(",") if a.strip()]


def _installtype(element: str, env: Mapping[str, str]) -> str:
    default = env.get("DIB_DEFAULT_INSTALLTYPE") or "source"
    return env.get("DIB_INSTALLTYPE_" + element.replace("-", "_"), default)


def _when_holds(when: Any, *, env: Mapping[str, str], element: str, pkg: str) -> bool:
    if when is None:
        return True
    items = [when] if isinstance(when, str) else list(when)
    for item in items:
        match = _WHEN_RE.match(item)
        if not match:
            raise ElementError(f"element '{element}': package '{pkg}': malformed "
                               f"'when' condition {item!r}",
                               hint="write 'VAR = value' or 'VAR != value'")
        var, op, val = match.group("var", "op", "val")
        if var not in env:
            raise ElementError(
                f"element '{element}': package '{pkg}': the 'when' condition "
                f"{item!r} uses variable {var}, which is not set",
                hint=f"export {var} (an element's environment.d can give it a default)")
        if (env[var] == val) != (op == "="):
            return False
    return True


def squash(entries: Iterable[tuple[str, dict | None]], *, env: Mapping[str, str],
           arch: str) -> dict[str, dict[str, list[list[str]]]]:
    """Fold every element's package-installs data into one per-phase list.

    ``entries`` are (element name, parsed data) pairs in element order.
    Rules:

    * the phase defaults to install.d;
    * an option set is skipped when its ``installtype`` differs from the
      element's (``DIB_INSTALLTYPE_<element>``, else ``DIB_DEFAULT_INSTALLTYPE``,
      else ``source``), when ``ARCH`` is not in ``arch`` or is in
      ``not-arch``, when ``dib_python_version`` differs from
      ``DIB_PYTHON_VERSION``, or when a ``when`` condition fails (all must
      hold; an unset variable is an error);
    * ``uninstall: true`` puts the package on the phase's uninstall list;
      ``build-only: true`` puts it on both the install and the uninstall
      list of its phase;
    * a plain install of a package, in any element and any phase, cancels
      every uninstall of that package;
    * output order follows element order, then file order; duplicates drop.
    """
    data: dict[str, dict[str, list[list[str]]]] = {
        phase: {"install": [], "uninstall": []} for phase in PHASES}
    kept_installed: set[str] = set()
    py_version = env.get("DIB_PYTHON_VERSION", "")

    for element, objs in entries:
        if not objs:
            continue
        validate(objs, element=element, path=f"{element}/package-installs")
        for pkg, value in objs.items():
            for params in _param_sets(value):
                params = params or {}
                phase = params.get("phase", DEFAULT_PHASE)
                wanted = params.get("installtype")
                if wanted is not None and wanted != _installtype(element, env):
                    continue
                if "arch" in params and arch not in _arch_list(params["arch"]):
                    continue
                if "not-arch" in params and arch in _arch_list(params["not-arch"]):
                    continue
                want_py = params.get("dib_python_version")
                if want_py is not None and str(want_py) != py_version:
                    continue
                if not _when_holds(params.get("when"), env=env, element=element, pkg=pkg):
                    continue
                if params.get("build-only"):
                    kinds = ("install", "uninstall")
                elif params.get("uninstall"):
                    kinds = ("uninstall",)
                else:
                    kinds = ("install",)
                    kept_installed.add(pkg)
                for kind in kinds:
                    pair = [pkg, element]
                    if pair not in data[phase][kind]:
                        data[phase][kind].append(pair)

    for phase in PHASES:
        data[phase]["uninstall"] = [p for p in data[phase]["uninstall"]
                                    if p[0] not in kept_installed]
    return data
