"""Block-device layer: DIB's block-device YAML, offline partitioning and mkfs, fstab."""
from dib.blockdev.assemble import (DiskResult, build_disk, patch_disk,  # noqa: F401
                                   required_tools, tree_size)
from dib.blockdev.checks import preflight  # noqa: F401
from dib.blockdev.config import BlockDeviceConfig  # noqa: F401
from dib.blockdev.fstab import fstab_text, write_fstab  # noqa: F401
from dib.blockdev.graph import DEFAULT_CONFIG_YAML, load_config  # noqa: F401
from dib.blockdev.layout import (DiskPlan, plan_disk, plan_signature,  # noqa: F401
                                 sfdisk_script, unsized_plan)
from dib.blockdev.patch import CannotPatch  # noqa: F401
from dib.blockdev.sizes import parse_image_size_gb, parse_size  # noqa: F401

__all__ = ["BlockDeviceConfig", "load_config", "preflight", "DEFAULT_CONFIG_YAML", "DiskPlan",
           "DiskResult", "build_disk", "patch_disk", "plan_disk", "plan_signature",
           "unsized_plan", "CannotPatch", "required_tools", "sfdisk_script",
           "tree_size", "fstab_text", "write_fstab", "parse_image_size_gb", "parse_size"]
