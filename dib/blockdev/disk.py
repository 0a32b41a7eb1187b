"""Offline disk assembly: a sparse file, an sfdisk script, and filesystems
made and populated in place at their offsets.

No loop device, no mount on the host, no device-mapper: ``mkfs.ext4 -d`` with
``-E offset=`` and an explicit size, ``mkfs.fat --offset`` plus mtools,
``mkswap`` on a scratch file whose header page is spliced in.  When the tree
has nested mount points (``/``, ``/var``, ``/boot/efi``) the parent filesystem
must not contain the children's files: ``mkfs`` then runs in a private mount
namespace in which an empty directory is bind-mounted over each nested mount
point, so nothing is copied and nothing leaks onto the host.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dib import runner
from dib.blockdev import sizes
from dib.blockdev.checks import preflight
from dib.blockdev.config import BlockDeviceConfig
from dib.blockdev.nodes import BIOS_BOOT_GUID, ESP_GUID, LocalLoop, Partition, Partitioning
from dib.blockdev.patch import update_ext_fs, zero_range
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
    size: int
    sector_size: int
    label: str | None                     # "mbr", "gpt" or None (no table)
    disk_id: str | None
    partitions: list[PartitionPlan]
    filesystems: list[FilesystemPlan]
    extended: tuple[int, int] | None = None   # mbr extended partition (start, size)
    config: BlockDeviceConfig | None = field(default=None, repr=False)

    def fs_at(self, mount_point: str) -> FilesystemPlan | None:
        for fs in self.filesystems:
            if fs.mount_point == mount_point:
                return fs
        return None

    @property
    def root_fs(self) -> FilesystemPlan | None:
        return self.fs_at("/")

    @property
    def boot_fs(self) -> FilesystemPlan | None:
        """The filesystem that holds /boot (a /boot mount, else the root)."""
        return self.fs_at("/boot") or self.root_fs

    def partition(self, name: str) -> PartitionPlan | None:
        for part in self.partitions:
            if part.name == name:
                return part
        return None

    @property
    def esp(self) -> PartitionPlan | None:
        for part in self.partitions:
            if part.type in (ESP_GUID, "ef"):
                return part
        fs = self.fs_at("/boot/efi")
        return self.partition(fs.device) if fs else None

    @property
    def esp_fs(self) -> FilesystemPlan | None:
        esp = self.esp
        if esp is None:
            return None
        for fs in self.filesystems:
            if fs.device == esp.name and fs.type in ("vfat", "fat"):
                return fs
        return None

    @property
    def bios_boot(self) -> PartitionPlan | None:
        for part in self.partitions:
            if part.type == BIOS_BOOT_GUID:
                return part
        return None

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


@dataclass
class DiskResult:
    raw: Path
    plan: DiskPlan
    timings: dict[str, float]


def plan_signature(plan: DiskPlan) -> str:
    """Everything about a plan that decides where bytes go on the disk."""
    return json.dumps({"size": plan.size, "sector": plan.sector_size, "label": plan.label,
                       "id": plan.disk_id, "extended": plan.extended,
                       "partitions": [asdict(p) for p in plan.partitions],
                       "filesystems": [asdict(f) for f in plan.filesystems]},
                      sort_keys=True)


# ------------------------------------------------------------------ sizing

def tree_size(tree: Path) -> int:
    """Bytes allocated by the tree (``du -s -x``, DIB's measure)."""
    result = runner.run(["du", "-s", "-x", "-B1", str(tree)], what="measure the tree size")
    return int(result.stdout.split()[0])


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
    parts: list[PartitionPlan] = []
    extended = None
    disk_id = None
    label = None
    if table is not None:
        label = table.label
        disk_id = table.disk_id
        parts, extended = _layout(config, table, total, sector)
    filesystems = []
    for fs in config.filesystems:
        base = config.nodes[fs.base]  # type: ignore[index]
        if isinstance(base, Partition):
            pp = next(p for p in parts if p.name == base.name)
            offset, size = pp.start, pp.size
        elif isinstance(base, LocalLoop):
            offset, size = 0, total
        else:
            raise BlockDeviceError(f"mkfs '{fs.name}' is on '{fs.base}', which the offline "
                                   "disk builder cannot create")
        mount = config.mount_of(fs)
        filesystems.append(FilesystemPlan(
            name=fs.name, type=str(fs.type), label=str(fs.label), uuid=fs.uuid,
            fs_uuid=fs.fs_uuid, opts=fs.opts, offset=offset, size=size, device=base.name,
            mount_point=mount.mount_point if mount else None))
    return DiskPlan(size=total, sector_size=sector, label=label, disk_id=disk_id,
                    partitions=parts, filesystems=filesystems, extended=extended,
                    config=config)


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
        logical = table.label == "mbr" and not part.primary
        if logical:
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
        plans.append(PartitionPlan(name=part.name, number=part.number, start=start,
                                   size=size, type=part.type, bootable=part.bootable,
                                   logical=logical, partuuid=part.partuuid,
                                   gpt_name=part.gpt_name))
        cursor = start + size
    extended = None
    if ext_start is not None:
        extended = (ext_start, plans[-1].end - ext_start)
    return plans, extended


# ------------------------------------------------------------------ sfdisk

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


# ------------------------------------------------------------------ build

def required_tools(config: BlockDeviceConfig) -> list[tuple[str, str]]:
    """(tool, Debian package) the offline builder needs for this config."""
    tools = [("du", "coreutils")]
    if config.partitionings:
        tools.append(("sfdisk", "fdisk"))
    types = {fs.type for fs in config.filesystems}
    for fs_type in sorted(t for t in types if t in EXT_TYPES):
        tools.append((f"mkfs.{fs_type}", "e2fsprogs"))
    if types & set(EXT_TYPES):
        tools.append(("debugfs", "e2fsprogs"))
    if types & {"vfat", "fat"}:
        tools += [("mkfs.fat", "dosfstools"), ("mcopy", "mtools"), ("mmd", "mtools")]
    if "swap" in types:
        tools.append(("mkswap", "util-linux"))
    if "xfs" in types:
        tools.append(("mkfs.xfs", "xfsprogs"))
    if _has_nested_mounts(config):
        tools += [("unshare", "util-linux"), ("mount", "mount")]
    return tools


def _has_nested_mounts(config: BlockDeviceConfig) -> bool:
    points = config.mount_points()
    return any(_under(b, a) for a in points for b in points if a != b)


def _under(path: str, parent: str) -> bool:
    return path != parent and (parent == "/" or path.startswith(parent.rstrip("/") + "/"))


def build_disk(plan: DiskPlan, tree: Path, raw: Path) -> DiskResult:
    """Write the partition table and every filesystem, populated from ``tree``."""
    tree, raw = Path(tree), Path(raw)
    if plan.config is not None:
        runner.require_tools(required_tools(plan.config), "building the disk image")
    for fs in plan.filesystems:
        if fs.type not in ("swap",) and fs.uuid is None:
            raise BlockDeviceError(f"mkfs '{fs.name}' has no uuid",
                                   hint="call config.assign_ids(seed) before plan_disk")
    timings: dict[str, float] = {}
    start = time.monotonic()
    with open(raw, "wb") as fh:
        fh.truncate(plan.size)
    if plan.label is not None:
        t0 = time.monotonic()
        runner.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(raw)],
                   input=sfdisk_script(plan), what="sfdisk (write the partition table)")
        timings["sfdisk"] = time.monotonic() - t0
    with tempfile.TemporaryDirectory(prefix="dib-disk-", dir=raw.parent) as scratch:
        for fs in plan.filesystems:
            t0 = time.monotonic()
            _make_filesystem(plan, fs, tree, raw, Path(scratch))
            timings[f"mkfs {fs.name}"] = time.monotonic() - t0
    timings["total"] = time.monotonic() - start
    return DiskResult(raw=raw, plan=plan, timings=timings)


def patch_disk(plan: DiskPlan, tree: Path, raw: Path, paths: list[str]) -> DiskResult:
    """Bring a disk made from an earlier state of the tree, with this same
    plan, up to date: ext filesystems get just ``paths`` (relative to the
    tree's root) rewritten; every other filesystem is small and made again.
    Raises CannotPatch when a change cannot be written in place."""
    tree, raw = Path(tree), Path(raw)
    timings: dict[str, float] = {}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dib-disk-", dir=raw.parent) as scratch:
        for fs in plan.filesystems:
            t0 = time.monotonic()
            if fs.type in EXT_TYPES:
                mine = _paths_on(plan, fs, paths)
                if mine:
                    source = tree / (fs.mount_point or "/").lstrip("/")
                    update_ext_fs(raw, fs.offset, source, mine, Path(scratch))
            else:
                zero_range(raw, fs.offset, fs.size)
                _make_filesystem(plan, fs, tree, raw, Path(scratch))
            timings[f"update {fs.name}"] = time.monotonic() - t0
    timings["total"] = time.monotonic() - start
    return DiskResult(raw=raw, plan=plan, timings=timings)


def _mount_points(plan: DiskPlan) -> list[str]:
    return [fs.mount_point for fs in plan.filesystems
            if fs.mount_point and fs.mount_point != "none"]


def _paths_on(plan: DiskPlan, fs: FilesystemPlan, paths: list[str]) -> list[str]:
    """The paths (relative to ``fs``'s root) that live on ``fs``. A child's
    mount point is on its parent too, as the empty directory it is there."""
    mine = fs.mount_point
    if not mine or mine == "none":
        return []
    points = _mount_points(plan)
    out = []
    for path in paths:
        absolute = "/" + path.strip("/")
        if _owner(points, absolute) == mine or \
                (absolute in points and _owner(points, absolute, strict=True) == mine):
            rel = os.path.relpath(absolute, mine)
            if rel != ".":
                out.append(rel)
    return out


def _owner(points: list[str], absolute: str, strict: bool = False) -> str | None:
    """The deepest mount point holding ``absolute`` (strictly above it if asked)."""
    found = [p for p in points
             if _under(absolute, p) or (p == absolute and not strict)]
    return max(found, key=len) if found else None


def _make_filesystem(plan: DiskPlan, fs: FilesystemPlan, tree: Path, raw: Path,
                     scratch: Path) -> None:
    points = _mount_points(plan)
    mp = fs.mount_point if fs.mount_point != "none" else None
    src = tree / mp.lstrip("/") if mp else None
    nested = []
    if mp:
        children = [p for p in points if _under(p, mp)]
        nested = [p for p in children
                  if not any(_under(p, q) for q in children if q != p)]
    if fs.type in EXT_TYPES:
        _mkfs_ext(fs, raw, src, tree, nested, scratch)
    elif fs.type in ("vfat", "fat"):
        _mkfs_fat(fs, raw, src, tree, nested, plan.sector_size)
    elif fs.type == "swap":
        _mkswap(fs, raw, scratch)
    else:
        raise BlockDeviceError(f"mkfs '{fs.name}': {fs.type} cannot be built offline",
                               hint="use ext4 (or vfat for an ESP)")


def _placeholder(original: Path, scratch: Path) -> Path:
    """An empty directory with the original's owner, mode and times."""
    empty = Path(tempfile.mkdtemp(prefix="empty-", dir=scratch))
    try:
        st = original.stat()
    except FileNotFoundError:
        return empty
    os.chown(empty, st.st_uid, st.st_gid)
    os.chmod(empty, st.st_mode & 0o7777)
    os.utime(empty, ns=(st.st_atime_ns, st.st_mtime_ns))
    return empty


def _mkfs_ext(fs: FilesystemPlan, raw: Path, src: Path | None, tree: Path,
              nested: list[str], scratch: Path) -> None:
    # The image file is sparse, so its inode tables and journal already read
    # as zeros: writing them again only makes mkfs and the qcow2 slower.
    ext_opts = f"offset={fs.offset},lazy_itable_init=1,lazy_journal_init=1"
    if fs.uuid:
        ext_opts += f",hash_seed={fs.uuid}"
    argv = [f"mkfs.{fs.type}", "-q", "-F", "-L", fs.label]
    if fs.uuid:
        argv += ["-U", fs.uuid]
    argv += ["-E", ext_opts]
    if fs.opts:
        argv += shlex.split(fs.opts)
    populate = src is not None and src.is_dir()
    if populate:
        argv += ["-d", str(src)]
    argv += [str(raw), f"{fs.size // 1024}k"]
    env = dict(os.environ)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        env["E2FSPROGS_FAKE_TIME"] = epoch
    binds = [(p, tree / p.lstrip("/")) for p in nested] if populate else []
    binds = [(p, target) for p, target in binds if target.is_dir()]
    if binds:
        if os.geteuid() != 0:
            raise BlockDeviceError(
                f"mkfs '{fs.name}': keeping {', '.join(p for p, _ in binds)} out of "
                f"{fs.mount_point} needs a private mount namespace, which needs root",
                hint="run the build as root")
        helper = [sys.executable, "-m", "dib.blockdev._nsexec"]
        for _, target in binds:
            helper += ["--bind", f"{_placeholder(target, scratch)}:{target}"]
        argv = ["unshare", "--mount", "--propagation", "private", *helper, "--", *argv]
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            [pkg_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    runner.run(argv, env=env, what=f"mkfs.{fs.type} of '{fs.name}'")


def mtools_env() -> dict[str, str]:
    env = dict(os.environ)
    env["MTOOLS_SKIP_CHECK"] = "1"
    env["MTOOLS_NO_VFAT"] = "0"
    return env


def _mkfs_fat(fs: FilesystemPlan, raw: Path, src: Path | None, tree: Path,
              nested: list[str], sector: int) -> None:
    argv = ["mkfs.fat"]
    if fs.size >= 64 * sizes.MiB:
        argv += ["-F", "32", "-s", "1"]   # 1-sector clusters: enough clusters for FAT32
    if sector != 512:
        argv += ["-S", str(sector)]
    argv += ["-n", fs.label]
    if fs.uuid:
        argv += ["-i", fs.uuid.replace("-", "")]
    if fs.opts:
        argv += shlex.split(fs.opts)
    argv += ["--offset", str(fs.offset // sector), str(raw), str(fs.size // 1024)]
    runner.run(argv, what=f"mkfs.fat of '{fs.name}'")
    if src is None or not src.is_dir():
        return
    excluded = {tree / p.lstrip("/") for p in nested}
    _mcopy_tree(raw, fs.offset, src, "::", excluded)


def _mcopy_tree(raw: Path, offset: int, src: Path, dest: str, excluded: set[Path]) -> None:
    image = f"{raw}@@{offset}"
    env = mtools_env()
    plain, descend = [], []
    for entry in sorted(src.iterdir()):
        if entry in excluded:
            runner.run(["mmd", "-i", image, f"{dest}/{entry.name}"], env=env,
                       what="mmd (mount point directory on the FAT filesystem)")
        elif any(entry in ex.parents for ex in excluded):
            descend.append(entry)
        else:
            plain.append(str(entry))
    if plain:
        runner.run(["mcopy", "-s", "-p", "-m", "-Q", "-D", "o", "-i", image, *plain,
                    f"{dest}/"], env=env, what="mcopy (populate the FAT filesystem)")
    for entry in descend:
        runner.run(["mmd", "-i", image, f"{dest}/{entry.name}"], env=env, what="mmd")
        _mcopy_tree(raw, offset, entry, f"{dest}/{entry.name}", excluded)


def _mkswap(fs: FilesystemPlan, raw: Path, scratch: Path) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    if fs.size < 10 * page:
        raise BlockDeviceError(f"swap '{fs.name}' is too small ({fs.size} bytes)",
                               hint="give the swap partition at least 1MiB")
    tmp = scratch / f"{fs.name}.swap"
    with open(tmp, "wb") as fh:
        fh.truncate(fs.size)
    argv = ["mkswap", "-L", fs.label]
    if fs.uuid:
        argv += ["-U", fs.uuid]
    runner.run(argv + [str(tmp)], what=f"mkswap of '{fs.name}'")
    with open(tmp, "rb") as fh:
        header = fh.read(page)
    with open(raw, "r+b") as fh:
        os.pwrite(fh.fileno(), header, fs.offset)
    tmp.unlink()
