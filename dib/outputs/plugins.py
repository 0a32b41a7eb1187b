"""The output types: plugins found through stevedore group ``dib.outputs``
(with the built-in ones for a source checkout), and the check of the types a
build asks for."""
from __future__ import annotations

from typing import Iterable

from dib.blockdev.registry import PluginRegistry
from dib.errors import ConfigError
from dib.outputs import archives, images
from dib.outputs.base import Output

GROUP = "dib.outputs"


def _builtins() -> dict[str, type[Output]]:
    classes = [images.Raw, images.Qcow2, images.Vhd, archives.Tar, archives.Tgz,
               archives.Squashfs, archives.Docker]
    return {cls.name: cls for cls in classes}


registry: PluginRegistry[type[Output]] = PluginRegistry(GROUP, _builtins)


def validate_types(types: Iterable[str] | str, *, docker_target: str | None = None
                   ) -> list[Output]:
    """Check the requested types before any build work; raw is ordered last."""
    if isinstance(types, str):
        types = [t for t in types.replace(",", " ").split() if t]
    wanted = list(dict.fromkeys(types))
    if not wanted:
        raise ConfigError("no output type given",
                          hint=f"use -t with one or more of: {', '.join(registry.names())}")
    outputs = []
    for name in wanted:
        cls = registry.get(name)
        if cls is None:
            raise ConfigError(f"unknown output type '{name}'{registry.suggest(name)}",
                              hint=f"accepted types: {', '.join(registry.names())}")
        outputs.append(cls())
    if "docker" in wanted:
        if not docker_target:
            raise ConfigError("output type docker needs a target name",
                              hint="set --docker-target / DOCKER_TARGET to repo:tag")
        archives.parse_docker_target(docker_target)
    return sorted(outputs, key=lambda o: o.name == "raw")


def needs_disk(outputs: Iterable[Output]) -> bool:
    return any(o.needs_disk for o in outputs)
