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


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Every setting of one build (one field per entry of
    ``dib.config.settings.SETTINGS``, same name; a unit test keeps the two
    in step), plus the requested elements, the raw argv and the caller's
    environment."""
    image_name: str = "image"
    image_types: tuple[str, ...] = ("qcow2",)
    arch: str = ""
    debug_trace: int = 0
    uncompressed: bool = False
    clear_env: bool = False
    skip_base: bool = False
    packages: tuple[str, ...] = ()
    checksum: tuple[str, ...] = ()
    sbom: tuple[str, ...] = ("spdx",)
    provenance: bool = True
    image_size: float | None = None
    image_extra_size: int | None = None
    image_cache: str = ""
    max_online_resize: int | None = None
    min_tmpfs: float = 2.0
    mkfs_journal_size: int | None = None
    mkfs_options: str = ""
    no_tmpfs: bool = False
    offline: bool = False
    qemu_img_options: str = ""
    root_label: str = "cloudimg-rootfs"
    fs_type: str = "ext4"
    ramdisk_element: str = "ramdisk"
    install_type: str = "source"
    docker_target: str | None = None
    logfile: str | None = None
    block_device_config: str | None = None
    break_points: tuple[str, ...] = ()
    workdir: str = "/var/tmp"
    keep_workspace: bool = False
    dry_run: bool = False
    json_report: str | None = None
    cache_dir: str = ""
    no_cache: bool = False
    cache_max_size: int = 10 << 30
    gzip_cache: bool = True
    cache_remote: str | None = None
    cache_remote_mode: str = "readwrite"
    cache_remote_insecure: bool = False
    cache_remote_required: bool = False
    explain_cache: bool = False
    host_ca_bundle: str = ""
    hook_timeout: int = 0
    check_reproducible: bool = False
    # not settings: what the build was asked for, and how
    elements: tuple[str, ...] = ()
    ramdisk: bool = False
    argv: tuple[str, ...] = ()
    environ: Mapping[str, str] = dataclasses.field(default_factory=dict)


#: BuildConfig's fields that are not entries of the settings registry
NOT_SETTINGS = ("elements", "ramdisk", "argv", "environ")


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
                      ramdisk: bool = False) -> BuildConfig:
    """Merge CLI values (already parsed) over the environment over defaults."""
    values = {setting.name: resolve_setting(setting, cli_values.get(setting.name), environ)
              for setting in SETTINGS}
    _normalise(values, environ)
    return BuildConfig(**values, elements=tuple(elements), ramdisk=ramdisk, argv=tuple(argv),
                       environ=dict(environ))


def resolve_setting(setting: Setting, given: Any, environ: Mapping[str, str]) -> Any:
    """One setting's value: the flag's (already parsed) over the environment
    variable's over the registry's default."""
    if given is not None and (given not in ([], ()) or setting.empty_is_value):
        if setting.kind == APPEND:
            return tuple(item for chunk in given for item in chunk)
        if setting.kind == COUNT and setting.env:
            # -x adds to whatever DIB_DEBUG_TRACE already says, as in DIB.
            base = environ.get(setting.env, "0")
            return given + (int(base) if base.isdigit() else 0)
        return given
    if setting.env and environ.get(setting.env, "") != "":
        return parse_value(setting, environ[setting.env], f"environment variable {setting.env}")
    return setting.default_value()


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


def with_changes(config: BuildConfig, **changes: Any) -> BuildConfig:
    return dataclasses.replace(config, **changes)
