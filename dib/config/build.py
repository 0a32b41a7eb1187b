"""BuildConfig: one immutable value holding every setting of one build."""
from __future__ import annotations

import dataclasses
import os
import platform
from typing import Any, Mapping

from dib.config.settings import APPEND, COUNT, SETTINGS, Setting
from dib.errors import ConfigError

_ARCH_FROM_MACHINE = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64el",
                      "s390x": "s390x", "i686": "i386", "i386": "i386"}
KNOWN_ARCHES = ("amd64", "arm64", "armhf", "i386", "ppc64el", "s390x",
                "x86_64", "aarch64", "ppc64le")
# DIB accepts both Debian and kernel spellings; hooks see the Debian one.
_ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64el"}


def host_arch() -> str:
    machine = platform.machine()
    if machine.startswith("armv"):
        return "armhf"
    return _ARCH_FROM_MACHINE.get(machine, machine)


def _fields() -> list[tuple[str, Any, dataclasses.Field]]:
    out = [(s.name, Any, dataclasses.field(default=None)) for s in SETTINGS]
    out += [
        ("elements", tuple, dataclasses.field(default=())),
        ("ramdisk", bool, dataclasses.field(default=False)),
        ("argv", tuple, dataclasses.field(default=())),
        ("environ", Mapping, dataclasses.field(default_factory=dict)),
    ]
    return out


BuildConfig = dataclasses.make_dataclass(
    "BuildConfig", _fields(), frozen=True,
)
BuildConfig.__module__ = __name__
BuildConfig.__doc__ = ("Every setting of one build (see dib.config.settings), plus the "
                       "requested elements, the raw argv and the caller's environment.")


def parse_value(setting: Setting, text: str, source: str) -> Any:
    """Parse one raw value; a bad value names where it came from and what is accepted."""
    if setting.choices and text not in setting.choices:
        raise ConfigError(f"{source}: invalid value '{text}'; accepted values: "
                          f"{', '.join(setting.choices)}")
    try:
        return setting.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: invalid value '{text}': {exc}") from None


def load_build_config(cli_values: Mapping[str, Any], *, elements: list[str] | tuple[str, ...],
                      environ: Mapping[str, str], argv: list[str] | tuple[str, ...] = (),
                      ramdisk: bool = False) -> Any:
    """Merge CLI values (already parsed) over the environment over defaults."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        given = cli_values.get(setting.name)
        if given is not None and given != [] and given != ():
            if setting.kind == APPEND:
                given = tuple(item for chunk in given for item in chunk)
            elif setting.kind == COUNT and setting.env:
                # -x adds to whatever DIB_DEBUG_TRACE already says, as in DIB.
                base = environ.get(setting.env, "0")
                given += int(base) if base.isdigit() else 0
            values[setting.name] = given
        elif setting.env and environ.get(setting.env, "") != "":
            values[setting.name] = parse_value(setting, environ[setting.env],
                                               f"environment variable {setting.env}")
        else:
            values[setting.name] = setting.default_value()
    _normalise(values, environ)
    return BuildConfig(**values, elements=tuple(elements), ramdisk=ramdisk, argv=tuple(argv),
                       environ=dict(environ))


def _normalise(values: dict[str, Any], environ: Mapping[str, str]) -> None:
    arch = values.get("arch") or host_arch()
    if arch not in KNOWN_ARCHES:
        raise ConfigError(f"-a/ARCH: unknown architecture '{arch}'; accepted values: "
                          f"{', '.join(KNOWN_ARCHES)}")
    values["arch"] = _ARCH_ALIASES.get(arch, arch)
    types = values["image_types"]
    # DIB strips a trailing .TYPE from -o when exactly one type is asked for.
    name = os.path.abspath(values["image_name"])
    if len(types) == 1 and name.endswith("." + types[0]):
        values["image_name"] = name[: -len(types[0]) - 1]
    if values["root_label"] is None:
        values["root_label"] = "img-rootfs" if values["fs_type"] == "xfs" else "cloudimg-rootfs"
    if values["debug_trace"] is None:
        values["debug_trace"] = 0


def with_changes(config: Any, **changes: Any) -> Any:
    return dataclasses.replace(config, **changes)
