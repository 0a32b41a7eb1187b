"""The disk's layout, worked out without touching anything: its size, where
each partition and filesystem starts and ends, the sfdisk script that
writes the table, and which filesystem holds each path of the tree.

``DiskPlan`` is also the one place that says which filesystem is the root,
which holds /boot and which partition is the ESP.  Making the disk from a
plan is ``dib.blockdev.assemble``.
"""
from __future__ import annotations

import json
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Callable

from dib.blockdev import sizes
from dib.blockdev.checks import preflight
from dib.blockdev.config import BlockDeviceConfig
from dib.blockdev.nodes import (BIOS_BOOT_GUID, ESP_GUID, LocalLoop, Mkfs, Node, Partition,
                                Partitioning)
from dib.errors import BlockDeviceError

EXT_TYPES = ("ext2", "ext3", "ext4")
#: ext journal allowance added to DIB's computed default size
_JOURNAL = 64 * sizes.MiB
_ROUND = 64 * sizes.KiB

@dataclass
class PartitionPlan:
    name: str
    number: int
    start: int            # bytes from the start of the disk
    size: int             # bytes
    type: str             # gpt: type GUID; mbr: hex byte ("83")
    bootable: bool = False
    logical: bool = False
    partuuid: str | None = None
    gpt_name: str | None = None

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class FilesystemPlan:
    name: str             # the mkfs node
    type: str
    label: str
    uuid: str | None      # as mkfs takes it (FAT: 8 hex digits)
    fs_uuid: str | None   # as blkid/grub print it
    opts: str | None
    offset: int
    size: int
    device: str           # partition or local_loop name
    mount_point: str | None


@dataclass
class DiskPlan:
    """Where everything goes on the disk (``size`` 0: not laid out yet, see
    ``unsized_plan``), and the one place that says which filesystem is the
    root, which holds /boot, and which partitions are the ESP and BIOS boot."""

    size: int
    sector_size: int
    label: str | None                     # "mbr", "gpt" or None (no table)
    disk_id: str | None
    partitions: list[PartitionPlan]
    filesystems: list[FilesystemPlan]
    extended: tuple[int, int] | None = None   # mbr extended partition (start, size)
    config: BlockDeviceConfig | None = field(default=None, repr=False)

    def fs_at(self, mount_point: str) -> FilesystemPlan | None:
        return next((fs for fs in self.filesystems if fs.mount_point == mount_point), None)

    def partition(self, name: str) -> PartitionPlan | None:
        return next((p for p in self.partitions if p.name == name), None)

    @property
    def root_fs(self) -> FilesystemPlan | None:
        return self.fs_at("/")

    @property
    def boot_fs(self) -> FilesystemPlan | None:
        """The filesystem that holds /boot (a /boot mount, else the root)."""
        return self.fs_at("/boot") or self.root_fs

    @property
    def esp(self) -> PartitionPlan | None:
        """The partition typed as an ESP, else the one mounted at /boot/efi."""
        typed = next((p for p in self.partitions if p.type in (ESP_GUID, "ef")), None)
        mounted = self.fs_at("/boot/efi")
        return typed or (self.partition(mounted.device) if mounted else None)

    @property
    def esp_fs(self) -> FilesystemPlan | None:
        esp = self.esp
        return next((fs for fs in self.filesystems
                     if esp and fs.device == esp.name and fs.type in ("vfat", "fat")), None)

    @property
    def bios_boot(self) -> PartitionPlan | None:
        return next((p for p in self.partitions if p.type == BIOS_BOOT_GUID), None)

    def hook_environment(self) -> dict[str, str]:
        """What hooks are told about the layout, as DIB tells them."""
        env = {}
        if self.root_fs:
            env["DIB_ROOT_LABEL"] = self.root_fs.label
            env["DIB_ROOT_FSTYPE"] = self.root_fs.type
        if self.boot_fs:
            env["DIB_BOOT_LABEL"] = self.boot_fs.label
        return env

    def bios_embed_area(self) -> tuple[int, int] | None:
        """(first LBA, bytes) where a BIOS GRUB core image can go, or None."""
        if self.sector_size != 512:
            return None
        if self.label == "gpt":
            bsp = self.bios_boot
            return (bsp.start // 512, bsp.size) if bsp else None
        if self.label == "mbr" and self.partitions:
            first = min(p.start for p in self.partitions)
            if self.extended:
                first = min(first, self.extended[0])
            return (1, first - 512) if first > 512 else None
        return None


def plan_signature(plan: DiskPlan) -> str:
    """Everything about a plan that decides where bytes go on the disk."""
    return json.dumps({"size": plan.size, "sector": plan.sector_size, "label": plan.label,
                       "id": plan.disk_id, "extended": plan.extended,
                       "partitions": [asdict(p) for p in plan.partitions],
                       "filesystems": [asdict(f) for f in plan.filesystems]},
                      sort_keys=True)


def default_image_size(config: BlockDeviceConfig, tree_bytes: int,
                       extra_size: int | None = None) -> int:
    """DIB's default: tree / 0.6 (or tree + extra), plus fixed partitions."""
    content = tree_bytes + extra_size if extra_size is not None else int(tree_bytes / 0.6)
    fixed = 0
    for part in config.partitions:
        if not sizes.is_relative(part.size):
            fixed += sizes.parse_size(part.size)
    if any(fs.type in ("ext3", "ext4") for fs in config.filesystems):
        content += _JOURNAL
    overhead = 2 * sizes.MiB + len(config.partitions) * sizes.MiB
    return sizes.align_up(content + fixed + overhead, sizes.MiB)


def plan_disk(config: BlockDeviceConfig, *, tree_bytes: int, image_size: int | None = None,
              extra_size: int | None = None) -> DiskPlan:
    """Lay out the disk: size, partition offsets (aligned) and filesystems."""
    preflight(config)
    loop: LocalLoop = config.loops[0]
    sector = loop.block_size
    if image_size is not None:
        total = sizes.align_up(int(image_size), _ROUND)
    elif loop.size is not None:
        total = sizes.align_up(sizes.parse_size(loop.size), _ROUND)
    else:
        total = default_image_size(config, tree_bytes, extra_size)
    total = sizes.align_up(total, max(_ROUND, sector))
    table = config.partition_table
    parts, extended = _layout(config, table, total, sector) if table else ([], None)

    def place(fs: Mkfs, base: Node) -> tuple[int, int]:
        if isinstance(base, Partition):
            part = next(p for p in parts if p.name == base.name)
            return part.start, part.size
        if isinstance(base, LocalLoop):
            return 0, total
        raise BlockDeviceError(f"mkfs '{fs.name}' is on '{fs.base}', which the offline "
                               "disk builder cannot create")
    return _plan(config, total, parts, extended, place)


def unsized_plan(config: BlockDeviceConfig) -> DiskPlan:
    """The plan before the disk's size is known, every size and offset 0:
    it says what is where (root, /boot, the ESP; for grub.cfg and the hooks'
    environment), not where bytes go.  ``plan_disk`` makes the real one."""
    table = config.partition_table
    parts = [_partition_plan(p, table, 0, 0) for p in table.ordered_partitions(config)] \
        if table else []
    return _plan(config, 0, parts, None, lambda _fs, _base: (0, 0))


def _plan(config: BlockDeviceConfig, total: int, parts: list[PartitionPlan],
          extended: tuple[int, int] | None,
          place: Callable[[Mkfs, Node], tuple[int, int]]) -> DiskPlan:
    table = config.partition_table
    filesystems = []
    for fs in config.filesystems:
        base = config.nodes[str(fs.base)]
        offset, size = place(fs, base)
        mount = config.mount_of(fs)
        filesystems.append(FilesystemPlan(
            name=fs.name, type=str(fs.type), label=str(fs.label), uuid=fs.uuid,
            fs_uuid=fs.fs_uuid, opts=fs.opts, offset=offset, size=size, device=base.name,
            mount_point=mount.mount_point if mount else None))
    return DiskPlan(size=total, sector_size=config.loops[0].block_size,
                    label=table.label if table else None,
                    disk_id=table.disk_id if table else None, partitions=parts,
                    filesystems=filesystems, extended=extended, config=config)


def _logical(part: Partition, table: Partitioning) -> bool:
    return table.label == "mbr" and not part.primary


def _partition_plan(part: Partition, table: Partitioning, start: int, size: int
                    ) -> PartitionPlan:
    return PartitionPlan(name=part.name, number=part.number, start=start, size=size,
                         type=part.type, bootable=part.bootable, logical=_logical(part, table),
                         partuuid=part.partuuid, gpt_name=part.gpt_name)


def _layout(config: BlockDeviceConfig, table: Partitioning, total: int, sector: int
            ) -> tuple[list[PartitionPlan], tuple[int, int] | None]:
    align = table.align
    if table.label == "gpt":
        entries_sectors = 128 * 128 // sector
        end = total - (1 + entries_sectors) * sector
    else:
        end = total
    ordered = table.ordered_partitions(config)
    cursor = align
    plans: list[PartitionPlan] = []
    ext_start = None
    for part in ordered:
        if _logical(part, table):
            if ext_start is None:
                ext_start = sizes.align_up(cursor, align)
                cursor = ext_start
            cursor += align  # room for this logical partition's EBR
        start = sizes.align_up(cursor, align)
        free = sizes.align_down(end, sector) - start
        if free <= 0:
            raise BlockDeviceError(
                f"block-device config: no space left for partition '{part.name}' on a "
                f"{sizes.human(total)} disk",
                hint="raise the image size (DIB_IMAGE_SIZE) or shrink earlier partitions")
        requested = sizes.parse_size(part.size, available=free,
                                     what=f"size of partition '{part.name}'")
        if sizes.is_relative(part.size):
            size = sizes.align_down(requested, align) if requested >= align else \
                sizes.align_down(requested, sector)
        else:
            size = sizes.align_down(requested, align) if requested >= align else \
                sizes.align_up(requested, sector)
        if size <= 0:
            raise BlockDeviceError(f"block-device config: partition '{part.name}' would be "
                                   "empty", hint="give it a larger size")
        if size > free:
            raise BlockDeviceError(
                f"block-device config: partition '{part.name}' needs {sizes.human(size)} "
                f"but only {sizes.human(free)} is left on a {sizes.human(total)} disk",
                hint="raise the image size (DIB_IMAGE_SIZE) or shrink the partition")
        plans.append(_partition_plan(part, table, start, size))
        cursor = start + size
    extended = None
    if ext_start is not None:
        extended = (ext_start, plans[-1].end - ext_start)
    return plans, extended



def sfdisk_script(plan: DiskPlan) -> str:
    """The sfdisk input that writes the plan's partition table."""
    if plan.label is None:
        raise BlockDeviceError("this disk has no partition table")
    sec = plan.sector_size
    lines = [f"label: {'gpt' if plan.label == 'gpt' else 'dos'}"]
    if plan.disk_id:
        lines.append(f"label-id: {plan.disk_id}")
    lines.append("unit: sectors")
    if sec != 512:
        lines.append(f"sector-size: {sec}")
    lines.append("")
    primaries = [p for p in plan.partitions if not p.logical]
    logicals = [p for p in plan.partitions if p.logical]
    for part in primaries:
        fields = [f"start={part.start // sec}", f"size={part.size // sec}",
                  f"type={part.type}"]
        if plan.label == "gpt":
            if part.partuuid:
                fields.append(f"uuid={part.partuuid.upper()}")
            if part.gpt_name:
                fields.append(f'name="{part.gpt_name}"')
            if part.bootable:
                fields.append("attrs=LegacyBIOSBootable")
        elif part.bootable:
            fields.append("bootable")
        lines.append(", ".join(fields))
    if logicals:
        assert plan.extended is not None
        start, size = plan.extended
        lines.append(f"start={start // sec}, size={size // sec}, type=5")
        for part in logicals:
            fields = [f"start={part.start // sec}", f"size={part.size // sec}",
                      f"type={part.type}"]
            if part.bootable:
                fields.append("bootable")
            lines.append(", ".join(fields))
    return "\n".join(lines) + "\n"


def below(path: str, parent: str) -> bool:
    """True when ``path`` is inside the directory ``parent`` (not ``parent`` itself)."""
    return path != parent and (parent == "/" or path.startswith(parent.rstrip("/") + "/"))


def mount_points(plan: DiskPlan) -> list[str]:
    return [fs.mount_point for fs in plan.filesystems
            if fs.mount_point and fs.mount_point != "none"]


def paths_on(plan: DiskPlan, fs: FilesystemPlan, paths: list[str]) -> list[str]:
    """The paths (relative to ``fs``'s root) that live on ``fs``. A child's
    mount point is on its parent too, as the empty directory it is there."""
    mine = fs.mount_point
    if not mine or mine == "none":
        return []
    points = mount_points(plan)
    out = []
    for path in paths:
        absolute = "/" + path.strip("/")
        if _owner(points, absolute) == mine or \
                (absolute in points and _owner(points, absolute, strict=True) == mine):
            rel = posixpath.relpath(absolute, mine)
            if rel != ".":
                out.append(rel)
    return out


def _owner(points: list[str], absolute: str, strict: bool = False) -> str | None:
    """The deepest mount point holding ``absolute`` (strictly above it if asked)."""
    found = [p for p in points
             if below(absolute, p) or (p == absolute and not strict)]
    return max(found, key=len) if found else None


def nested_mounts(plan: DiskPlan, fs: FilesystemPlan) -> list[str]:
    """The mount points directly below ``fs``'s own: their files belong to
    other filesystems, so they are left out of this one."""
    mine = fs.mount_point
    if not mine or mine == "none":
        return []
    children = [p for p in mount_points(plan) if below(p, mine)]
    return [p for p in children if not any(below(p, q) for q in children if q != p)]
