"""Everything that can be checked before slow work starts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dib.config.build import BuildConfig
from dib.elements import ElementIndex, Resolution, discover, resolve, with_build_defaults
from dib.plan import Plan, make_plan

if TYPE_CHECKING:
    from dib.pipeline.artifacts import DiskArtifacts


@dataclass
class Prepared:
    config: BuildConfig
    index: ElementIndex
    resolution: Resolution
    plan: Plan
    #: the block-device layout, read once per build by artifacts.disk_artifacts
    #: and handed to the build proper with the config
    disk: DiskArtifacts | None = None


def prepare(config: BuildConfig) -> Prepared:
    index = discover(config.environ)
    names = with_build_defaults(config.elements, arch=config.arch, skip_base=config.skip_base,
                                ramdisk_element=config.ramdisk_element if config.ramdisk
                                else None)
    resolution = resolve(names, index)
    for element in resolution.elements:
        element.load_all()
    plan = make_plan(resolution.elements, packages=config.packages)
    return Prepared(config, index, resolution, plan)
