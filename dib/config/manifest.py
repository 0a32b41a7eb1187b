"""YAML manifests: DIB's ``diskimage-builder FILE.yaml`` format.

A manifest is a list of image maps. The accepted keys are the settings'
``yaml_key``s plus ``elements``, ``environment`` and ``ramdisk``; the JSON
schema that checks them is generated from the registry. Entries naming the
same image are merged (lists appended, maps updated, scalars replaced); an
entry without ``imagename`` continues the entry before it, and the first
one's name defaults to ``image``.
"""
from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jsonschema
import yaml

from dib.config import types
from dib.config.build import KNOWN_ARCHES, BuildConfig, load_build_config, parse_value
from dib.config.settings import APPEND, COUNT, OFF_SWITCH, SETTINGS, SWITCH, Setting
from dib.errors import ConfigError

DEFAULT_IMAGENAME = "image"
IMAGENAME_KEY = "imagename"

_STRING_LIST = {"type": "array", "items": {"type": "string"}}
_EXTRA_KEYS: dict[str, tuple[dict, str]] = {
    "elements": (_STRING_LIST, "a list of element names"),
    "environment": ({"type": "object", "additionalProperties": {"type": "string"}},
                    "a map of variable names to strings"),
    "ramdisk": ({"type": "boolean"}, "a boolean"),
}


def _schema_for(setting: Setting) -> tuple[dict, str]:
    """The JSON schema of one setting's YAML value, and the same in words."""
    if setting.choices:
        return ({"type": "string", "enum": list(setting.choices)},
                f"one of {', '.join(setting.choices)}")
    if setting.name == "arch":
        return ({"type": "string", "enum": list(KNOWN_ARCHES)},
                f"one of {', '.join(KNOWN_ARCHES)}")
    if setting.parse is types.checksum_kinds:
        kinds = ["md5", "sha256"]
        return ({"anyOf": [{"type": "boolean"}, {"type": "string"},
                           {"type": "array", "items": {"type": "string", "enum": kinds}}]},
                "a boolean, or a list of md5/sha256")
    if setting.parse is types.sbom_formats:
        kinds = [*types.SBOM_FORMATS, "none"]
        return ({"anyOf": [{"type": "string"},
                           {"type": "array", "items": {"type": "string", "enum": kinds}}]},
                f"a list of {', '.join(types.SBOM_FORMATS)} (or one comma-separated string; "
                "none for no SBOM)")
    if setting.kind in (SWITCH, OFF_SWITCH):
        return {"type": "boolean"}, "a boolean"
    if setting.kind == COUNT:
        return {"type": "integer", "minimum": 0}, "an integer, 0 or more"
    if setting.kind == APPEND or setting.parse is types.comma_list:
        return ({"anyOf": [_STRING_LIST, {"type": "string"}]},
                "a list of strings (or one comma-separated string)")
    if setting.parse is types.key_values:
        return ({"anyOf": [{"type": "object",
                            "additionalProperties": {"type": ["string", "number",
                                                              "boolean"]}},
                           {"type": "string"}]},
                "a map of option names to values (or a k=v,k=v string)")
    if setting.parse is types.non_negative_int:
        return {"type": "integer", "minimum": 0}, "an integer, 0 or more"
    if setting.parse is types.positive_float:
        return {"type": "number", "exclusiveMinimum": 0}, "a number greater than 0"
    if setting.parse is types.boolean:
        return {"type": "boolean"}, "a boolean"
    return {"type": "string"}, "a string"


def _key_table() -> dict[str, tuple[dict, str]]:
    table = {s.yaml_key: _schema_for(s) for s in SETTINGS if s.yaml_key}
    table.update(_EXTRA_KEYS)
    return table


_BY_KEY: dict[str, Setting] = {s.yaml_key: s for s in SETTINGS if s.yaml_key}


def known_keys() -> list[str]:
    return sorted(_key_table())


def manifest_schema() -> dict:
    """The JSON schema of a whole manifest file (an array of image maps)."""
    properties = {key: schema for key, (schema, _) in _key_table().items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "array",
        "items": {"type": "object", "properties": properties,
                  "additionalProperties": False},
    }


def key_help() -> str:
    """One line per key, for ``diskimage-builder --help``."""
    helps = {s.yaml_key: s.help for s in SETTINGS if s.yaml_key}
    helps.update({"elements": "The elements to build the image from.",
                  "environment": "Environment variables for this build.",
                  "ramdisk": "Build a ramdisk (as ramdisk-image-create)."})
    lines = []
    for key, (_, words) in sorted(_key_table().items()):
        lines.append(f"  {key}: {helps[key]} ({words})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# reading and checking

def _describe_entry(index: int, entry: Any) -> str:
    where = f"entry {index + 1}"
    if isinstance(entry, dict) and isinstance(entry.get(IMAGENAME_KEY), str):
        where += f" (imagename '{entry[IMAGENAME_KEY]}')"
    return where


def validate(entries: Any, source: str) -> list[dict]:
    """Check a manifest's data; errors name the file, the entry and the key."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: a manifest must be a list of image maps, "
                          f"not {type(entries).__name__}",
                          hint="start each image with '- imagename: NAME'")
    table = _key_table()
    for index, entry in enumerate(entries):
        where = f"{source}: {_describe_entry(index, entry)}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a map of keys to values, "
                              f"not {type(entry).__name__}")
        for key in entry:
            if key not in table:
                close = difflib.get_close_matches(str(key), list(table), n=3, cutoff=0.6)
                hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close
                        else f"known keys: {', '.join(sorted(table))}")
                raise ConfigError(f"{where}: unknown key '{key}'", hint=hint)
    validator = jsonschema.Draft202012Validator(manifest_schema())
    errors = sorted(validator.iter_errors(entries), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        path = list(error.absolute_path)
        index = path[0] if path and isinstance(path[0], int) else 0
        where = f"{source}: {_describe_entry(index, entries[index])}"
        if len(path) >= 2:
            key = path[1]
            inner = "".join(f", item {p!r}" for p in path[2:])
            expected = table[key][1] if key in table else "?"
            raise ConfigError(f"{where}: key '{key}'{inner}: invalid value "
                              f"{error.instance!r}; {key} must be {expected}")
        raise ConfigError(f"{where}: {error.message}")
    return entries


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """One file's image maps, checked against the schema."""
    source = str(path)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read manifest {source}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    return validate(data, source)


# ---------------------------------------------------------------------------
# merging

def merge_entry(merged: dict, entry: Mapping[str, Any]) -> None:
    """Fold ``entry`` into ``merged`` the way DIB does."""
    for key, value in entry.items():
        if isinstance(value, list):
            existing = merged.get(key)
            if isinstance(existing, list):
                existing.extend(copy.deepcopy(value))
            else:
                merged[key] = copy.deepcopy(value)
        elif isinstance(value, dict):
            existing = merged.get(key)
            if isinstance(existing, dict):
                existing.update(copy.deepcopy(value))
            else:
                merged[key] = copy.deepcopy(value)
        else:
            merged[key] = value


def merge_entries(entries: Iterable[Mapping[str, Any]]) -> dict[str, dict]:
    """imagename → merged image map, in the order images first appear."""
    merged: dict[str, dict] = {}
    previous = DEFAULT_IMAGENAME
    for entry in entries:
        name = entry.get(IMAGENAME_KEY, previous)
        previous = name
        if name not in merged:
            merged[name] = {IMAGENAME_KEY: name}
        merge_entry(merged[name], entry)
    return merged


# ---------------------------------------------------------------------------
# image map → BuildConfig

def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _cli_value(setting: Setting, value: Any, source: str) -> Any:
    """A YAML value as the CLI parser would have produced it (None: not given)."""
    if setting.kind == SWITCH:
        if value is False or value is None:
            return None
        if isinstance(value, list):
            return parse_value(setting, ",".join(value), source)
        return parse_value(setting, "1" if value is True else str(value), source)
    if setting.kind == OFF_SWITCH:
        # false is the one value that says something here: true is the default.
        return None if value is None else parse_value(setting, _as_text(value), source)
    if setting.kind == COUNT:
        return int(value) or None
    if setting.kind == APPEND:
        chunks = value if isinstance(value, list) else [value]
        return [parse_value(setting, str(chunk), source) for chunk in chunks]
    if isinstance(value, list):
        return parse_value(setting, ",".join(str(v) for v in value), source)
    if isinstance(value, dict):
        return parse_value(setting, ",".join(f"{k}={_as_text(v)}" for k, v in value.items()),
                           source)
    return parse_value(setting, _as_text(value), source)


def equivalent_argv(entry: Mapping[str, Any]) -> list[str]:
    """The disk-image-create arguments this image map stands for."""
    argv: list[str] = []
    for setting in SETTINGS:
        if not setting.yaml_key or setting.yaml_key not in entry or not setting.flags:
            continue
        value = entry[setting.yaml_key]
        flag = setting.flags[0]
        if setting.kind == SWITCH:
            if value is True:
                argv.append(flag)
            elif value not in (False, None):
                argv.append(flag)
        elif setting.kind == OFF_SWITCH:
            if value is False:
                argv.append(flag)
        elif setting.kind == COUNT:
            argv.extend([flag] * int(value))
        elif isinstance(value, list):
            if setting.kind == APPEND:
                for chunk in value:
                    argv += [flag, str(chunk)]
            elif value:
                argv += [flag, ",".join(str(v) for v in value)]
        elif isinstance(value, dict):
            argv += [flag, ",".join(f"{k}={_as_text(v)}" for k, v in value.items())]
        else:
            argv += [flag, _as_text(value)]
    argv.extend(entry.get("elements", []))
    return argv


def entry_to_config(entry: Mapping[str, Any], *, environ: Mapping[str, str],
                    source: str = "manifest") -> BuildConfig:
    name = entry.get(IMAGENAME_KEY, DEFAULT_IMAGENAME)
    cli_values: dict[str, Any] = {}
    for key, value in entry.items():
        setting = _BY_KEY.get(key)
        if setting is None:
            continue
        cli_values[setting.name] = _cli_value(
            setting, value, f"{source}: imagename '{name}': key '{key}'")
    merged_env = dict(environ)
    merged_env.update(entry.get("environment", {}))
    try:
        return load_build_config(cli_values, elements=list(entry.get("elements", [])),
                                 environ=merged_env, argv=equivalent_argv(entry),
                                 ramdisk=bool(entry.get("ramdisk", False)))
    except ConfigError as exc:
        raise ConfigError(f"{source}: imagename '{name}': {exc.message}",
                          hint=exc.hint) from None


def load_manifests(paths: Sequence[str | os.PathLike], *,
                   environ: Mapping[str, str] | None = None) -> list[Any]:
    """Read, check and merge manifest files; one BuildConfig per image."""
    environ = os.environ if environ is None else environ
    entries: list[dict] = []
    sources: dict[str, list[str]] = {}
    previous = DEFAULT_IMAGENAME
    for path in paths:
        for entry in read_manifest(path):
            previous = entry.get(IMAGENAME_KEY, previous)
            files = sources.setdefault(previous, [])
            if str(path) not in files:
                files.append(str(path))
            entries.append(entry)
    configs = []
    for name, entry in merge_entries(entries).items():
        configs.append(entry_to_config(entry, environ=environ,
                                       source=", ".join(sources.get(name, ["manifest"]))))
    return configs
