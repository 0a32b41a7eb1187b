"""Checks over the whole block-device graph, and what this host can build.

A node checks its own options when it is read (``dib.blockdev.nodes``);
what needs more than one node (bases that exist and are of the right kind,
one filesystem per partition, unique labels and mount points, a root
filesystem) is checked here, before any work.
"""
from __future__ import annotations

import difflib
import graphlib
import os

from dib.blockdev import sizes
from dib.blockdev.config import BlockDeviceConfig
from dib.blockdev.nodes import (Fstab, LocalLoop, LogicalVolume, Lvm, Mkfs, Mount, Partition,
                                Partitioning, _fail)
from dib.errors import BlockDeviceError, PreflightError


def check_graph(config: BlockDeviceConfig) -> BlockDeviceConfig:
    """Check what involves more than one node; return the config."""
    for node in config.nodes.values():
        for edge in node.edges():
            if edge not in config.nodes:
                close = difflib.get_close_matches(edge, list(config.nodes), 1)
                raise _fail(node.name, node.plugin, f"base '{edge}' is not defined",
                            f"did you mean '{close[0]}'?" if close else
                            f"defined names: {', '.join(config.nodes)}")
    allowed = {Partitioning: (LocalLoop,), Mkfs: (Partition, LocalLoop, LogicalVolume),
               Mount: (Mkfs,), Fstab: (Mount,), Lvm: (Partition,)}
    for node in config.nodes.values():
        kinds = allowed.get(type(node))
        if not kinds:
            continue
        for edge in node.edges():
            target = config.nodes[edge]
            if not isinstance(target, kinds):
                names = " or ".join(k.plugin for k in kinds)
                raise _fail(node.name, node.plugin, f"base '{edge}' is a "
                            f"{target.plugin}, not a {names}",
                            f"point base: at a {names}")
    if not config.loops:
        raise BlockDeviceError("block-device config has no local_loop",
                               hint="add '- local_loop: {name: image0}' first")
    if len(config.loops) > 1:
        raise BlockDeviceError(
            "block-device config: more than one local_loop "
            f"({', '.join(n.name for n in config.loops)}) is not supported",
            hint="build one disk per image")
    seen_tables: dict[str, str] = {}
    for table in config.partitionings:
        if table.base in seen_tables:
            raise _fail(table.name, table.plugin, f"'{table.base}' already has the "
                        f"partition table '{seen_tables[table.base]}'",
                        "a disk holds one partition table; merge the partitions lists")
        seen_tables[table.base] = table.name
    users: dict[str, str] = {}
    for fs in config.filesystems:
        fs.finish()
        if fs.base in users:
            raise _fail(fs.name, fs.plugin, f"'{fs.base}' already holds filesystem "
                        f"'{users[fs.base]}'", "give each filesystem its own partition")
        if fs.base in seen_tables:
            raise _fail(fs.name, fs.plugin, f"'{fs.base}' is partitioned "
                        f"('{seen_tables[fs.base]}')", "put the mkfs on a partition")
        users[fs.base] = fs.name
    labels: dict[str, str] = {}
    for fs in config.filesystems:
        if fs.label in labels:
            raise _fail(fs.name, fs.plugin, f"label {fs.label!r} is already used by "
                        f"'{labels[fs.label]}'", "filesystem labels must be unique; "
                        "set a different label:")
        labels[fs.label] = fs.name
    mounted: dict[str, str] = {}
    points: dict[str, str] = {}
    for mount in config.mounts:
        fs = config.nodes[mount.base]
        if mount.base in mounted:
            raise _fail(mount.name, mount.plugin, f"filesystem '{mount.base}' is "
                        f"already mounted by '{mounted[mount.base]}'",
                        "mount each filesystem once")
        mounted[mount.base] = mount.name
        if mount.mount_point == "none":
            if fs.type != "swap":  # type: ignore[attr-defined]
                raise _fail(mount.name, mount.plugin, "mount_point none is for swap",
                            "give an absolute mount point")
            continue
        if fs.type == "swap":  # type: ignore[attr-defined]
            raise _fail(mount.name, mount.plugin, "swap cannot be mounted at "
                        f"{mount.mount_point}", "use mount_point: none for swap")
        if mount.mount_point in points:
            raise _fail(mount.name, mount.plugin, f"mount point {mount.mount_point} is "
                        f"already used by '{points[mount.mount_point]}'",
                        "each mount point appears once")
        points[mount.mount_point] = mount.name
    if config.filesystems and "/" not in points:
        raise BlockDeviceError("block-device config: no filesystem is mounted at /",
                               hint="add 'mount: {mount_point: /}' under the root mkfs "
                                    "(usually mkfs_root)")
    for fstab in config.fstabs:
        pass  # base kind checked above
    for table in config.partitionings:
        _check_percentages(config, table)
    try:
        config.order()
    except graphlib.CycleError as exc:
        raise BlockDeviceError(f"block-device config has a cycle: {exc.args[1]}",
                               hint="check the base: references") from None
    return config


def _check_percentages(config: BlockDeviceConfig, table: Partitioning) -> None:
    for part in table.ordered_partitions(config):
        if sizes.is_relative(part.size):
            pass  # range checked when parsed


def device_mapper_available(proc_misc: str = "/proc/misc",
                            control: str = "/dev/mapper/control") -> bool:
    if not os.path.exists(control):
        return False
    try:
        with open(proc_misc) as fh:
            return any(line.split()[-1:] == ["device-mapper"] for line in fh)
    except OSError:
        return False


def preflight(config: BlockDeviceConfig, *, dm_available: bool | None = None) -> None:
    """Refuse, before any work, what this host cannot build."""
    if config.lvms:
        ok = device_mapper_available() if dm_available is None else dm_available
        if not ok:
            raise PreflightError(
                f"block-device config uses lvm ('{config.lvms[0].name}') but this host has "
                "no device-mapper (/dev/mapper/control missing or no device-mapper in "
                "/proc/misc), so logical volumes cannot be created",
                hint="use a layout without lvm (e.g. block-device-efi), or build on a "
                     "host whose kernel has device-mapper")
    for fs in config.filesystems:
        if fs.type in ("xfs", "btrfs"):
            raise PreflightError(
                f"mkfs '{fs.name}' is {fs.type}: populating {fs.type} without a mount or "
                "loop device is not supported by the offline disk builder",
                hint="use type: ext4 (set DIB_ROOT_FSTYPE=ext4 for mkfs_root)")
