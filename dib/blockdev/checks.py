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
from dib.blockdev.nodes import (Fstab, LocalLoop, LogicalVolume, Lvm, Mkfs, Mount, Node,
                                Partition, Partitioning)
from dib.blockdev.problems import NodeProblems, Problems
from dib.errors import PreflightError


#: what each kind of node may be based on
_BASES: dict[type[Node], tuple[type[Node], ...]] = {
    Partitioning: (LocalLoop,), Mkfs: (Partition, LocalLoop, LogicalVolume),
    Mount: (Mkfs,), Fstab: (Mount,), Lvm: (Partition,)}


def check_graph(config: BlockDeviceConfig, problems: Problems) -> None:
    """Record in ``problems`` what is wrong across nodes.  Nodes that already
    have a problem are left out where they would only repeat it."""
    _check_bases(config, problems)
    tables = _check_disks(config, problems)
    _check_filesystems(config, tables, problems)
    _check_mounts(config, problems)
    _check_fstabs(config, problems)
    for table in config.partitionings:
        _check_room_after_full(config, table, problems)
    try:
        config.order()
    except graphlib.CycleError as exc:
        problems.whole(f"the nodes form a cycle: {' -> '.join(exc.args[1])}",
                       "check the base: references")


def _report(problems: Problems, node: Node) -> NodeProblems:
    return problems.about(node.name, node.plugin, node.position)


class _Owners(dict):
    """Which node took each thing first (a disk, a partition, a label...)."""

    def claim(self, thing: object, owner: str) -> str | None:
        """The node that took ``thing`` before ``owner``, or None."""
        earlier = self.get(thing)
        self.setdefault(thing, owner)
        return earlier


def _check_bases(config: BlockDeviceConfig, problems: Problems) -> None:
    for node in config.nodes.values():
        kinds = _BASES.get(type(node), ())
        for edge in node.edges():
            target = config.nodes.get(edge)
            if target is None:
                if edge not in problems.broken:
                    close = difflib.get_close_matches(edge, list(config.nodes), 1)
                    _report(problems, node)(f"base '{edge}' is not defined",
                                            f"did you mean '{close[0]}'?" if close else
                                            f"defined names: {', '.join(config.nodes)}",
                                            key="base")
            elif kinds and not isinstance(target, kinds):
                names = " or ".join(k.plugin for k in kinds)
                _report(problems, node)(f"base '{edge}' is a {target.plugin}, not a {names}",
                                        f"point base: at a {names}", key="base")


def _check_disks(config: BlockDeviceConfig, problems: Problems) -> _Owners:
    """One disk with at most one partition table; returns disk → table."""
    if not config.loops:
        problems.whole("there is no local_loop", "add '- local_loop: {name: image0}' first")
    for extra in config.loops[1:]:
        _report(problems, extra)(f"a second local_loop (after '{config.loops[0].name}') is "
                                 "not supported", "build one disk per image")
    tables = _Owners()
    for table in config.partitionings:
        if earlier := tables.claim(table.base, table.name):
            _report(problems, table)(f"'{table.base}' already has the partition table "
                                     f"'{earlier}'", "a disk holds one partition table; "
                                     "merge the partitions lists", key="base")
    return tables


def _check_filesystems(config: BlockDeviceConfig, tables: _Owners,
                       problems: Problems) -> None:
    users, labels = _Owners(), _Owners()
    for fs in config.filesystems:
        fs.finish(problems)
        report = _report(problems, fs)
        if earlier := users.claim(fs.base, fs.name):
            report(f"'{fs.base}' already holds filesystem '{earlier}'",
                   "give each filesystem its own partition", key="base")
        elif fs.base in tables:
            report(f"'{fs.base}' is partitioned ('{tables[fs.base]}')",
                   "put the mkfs on a partition", key="base")
        if earlier := labels.claim(fs.label, fs.name):
            report(f"label {fs.label!r} is already used by '{earlier}'",
                   "filesystem labels must be unique; set a different label:", key="label")


def _check_mounts(config: BlockDeviceConfig, problems: Problems) -> None:
    mounted, points = _Owners(), _Owners()
    for mount in config.mounts:
        report = _report(problems, mount)
        if earlier := mounted.claim(mount.base, mount.name):
            report(f"filesystem '{mount.base}' is already mounted by '{earlier}'",
                   "mount each filesystem once", key="base")
        fs = config.nodes.get(mount.base or "")
        swap = isinstance(fs, Mkfs) and fs.type == "swap"
        if not mount.mount_point:
            continue
        if mount.mount_point == "none":
            if isinstance(fs, Mkfs) and not swap:
                report("mount_point none is for swap", "give an absolute mount point",
                       key="mount_point")
            continue
        if swap:
            report(f"swap cannot be mounted at {mount.mount_point}",
                   "use mount_point: none for swap", key="mount_point")
        if earlier := points.claim(mount.mount_point, mount.name):
            report(f"mount point {mount.mount_point} is already used by '{earlier}'",
                   "each mount point appears once", key="mount_point")
    # A mount with a problem of its own may be the root one.
    if config.filesystems and "/" not in points and "mount" not in problems.broken.values():
        problems.whole("no filesystem is mounted at /",
                       "add 'mount: {mount_point: /}' under the root mkfs (usually mkfs_root)")


def _check_fstabs(config: BlockDeviceConfig, problems: Problems) -> None:
    """/etc/fstab gets one line per mount: a second fstab node would be lost."""
    owners = _Owners()
    for fstab in config.fstabs:
        if earlier := owners.claim(fstab.base, fstab.name):
            _report(problems, fstab)(f"mount '{fstab.base}' already has the fstab entry "
                                     f"'{earlier}'",
                                     "give each mount one fstab: (merge their options)",
                                     key="base")


def _check_room_after_full(config: BlockDeviceConfig, table: Partitioning,
                           problems: Problems) -> None:
    """A partition sized 100% takes all the space left: one after it on the
    disk would be empty, found only when the disk is laid out at the end of
    the build."""
    ordered = table.ordered_partitions(config)
    for index, part in enumerate(ordered[:-1]):
        if part.name in problems.broken or sizes.percentage(part.size) != 100:
            continue
        later = ", ".join(f"'{p.name}'" for p in ordered[index + 1:])
        _report(problems, part)(f"100% takes all the space left, so none remains for {later} "
                                "after it on the disk",
                                "give it a smaller share (e.g. 90%) or an absolute size, or "
                                "make it the last partition", key="size")


def device_mapper_available(proc_misc: str = "/proc/misc",
                            control: str = "/dev/mapper/control") -> bool:
    if not os.path.exists(control):
        return False
    try:
        with open(proc_misc) as fh:
            return any(line.split()[-1:] == ["device-mapper"] for line in fh)
    except OSError:
        return False


#: the plugins whose nodes the offline builder makes in an image file alone
#: (sfdisk, mkfs at an offset, mtools): a build without root can have them
OFFLINE_PLUGINS = frozenset({"local_loop", "partitioning", "partition", "mkfs", "mount",
                             "fstab"})
#: what the kernel must give for the nodes of other plugins we know by name
_KERNEL_DEVICES = {"lvm": "device-mapper (for LVM's volume groups and logical volumes)",
                   "mdraid": "the md driver (for a software RAID array)"}


def rootless_problems(config: BlockDeviceConfig) -> list[str]:
    """One line for each node a build without root cannot make: every node
    the offline builder does not make in the image file stands for a block
    device of the host's kernel (loop, device-mapper, md), and a user
    namespace may create none."""
    lines = []
    for node in config.nodes.values():
        # A logical volume is reported with the lvm node that makes it.
        if node.plugin in OFFLINE_PLUGINS or isinstance(node, LogicalVolume):
            continue
        needs = _KERNEL_DEVICES.get(node.plugin,
                                    "a block device of the host's kernel (a loop, "
                                    "device-mapper or md device)")
        lines.append(f"{node.plugin} node '{node.name}' needs {needs}")
    return lines


def preflight(config: BlockDeviceConfig, *, dm_available: bool | None = None,
              rootless: bool = False, origin: str = "block-device config") -> None:
    """Refuse, before any work, what this host cannot build; with
    ``rootless``, what a build in a user namespace cannot build either."""
    refused = rootless_problems(config) if rootless else []
    if refused:
        raise PreflightError(
            f"{origin}: a build without root makes disks from files only, and this layout "
            "needs what only root may use:\n" + "\n".join(f"  - {line}" for line in refused),
            hint="build as root, or use a layout of partitions and filesystems only "
                 "(the default, block-device-efi or block-device-gpt); see docs/rootless.md")
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
