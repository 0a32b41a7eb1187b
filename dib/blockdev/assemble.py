"""Offline disk assembly: a sparse file, the partition table written by
sfdisk, and filesystems made and populated in place at their offsets, all
as a ``DiskPlan`` (``dib.blockdev.layout``) says.

No loop device, no mount on the host, no device-mapper: ``mkfs.ext4 -d`` with
``-E offset=`` and an explicit size, ``mkfs.fat --offset`` plus mtools,
``mkswap`` on a scratch file whose header page is spliced in.  When the tree
has nested mount points (``/``, ``/var``, ``/boot/efi``) the parent filesystem
must not contain the children's files: ``mkfs`` then runs in a private mount
namespace in which an empty directory is bind-mounted over each nested mount
point, so nothing is copied and nothing leaks onto the host.  Every command
runs through ``dib.runner``.
"""
from __future__ import annotations

import os
import re
import shlex
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from dib import runner
from dib.blockdev import sizes
from dib.blockdev.config import BlockDeviceConfig
from dib.blockdev.layout import (EXT_TYPES, DiskPlan, FilesystemPlan, below, nested_mounts,
                                 paths_on, sfdisk_script)
from dib.blockdev.patch import CannotPatch, update_ext_fs, zero_range
from dib.errors import BlockDeviceError
from dib.runtime import reproducible
from dib.runtime.devnodes import CHAR, DIR, LINK, DevEntry


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
        tools += [("mkfs.fat", "dosfstools"), ("mcopy", "mtools"), ("mmd", "mtools"),
                  ("mlabel", "mtools")]
    if "swap" in types:
        tools.append(("mkswap", "util-linux"))
    if "xfs" in types:
        tools.append(("mkfs.xfs", "xfsprogs"))
    if _has_nested_mounts(config):
        tools += [("unshare", "util-linux"), ("mount", "mount")]
    return tools


def _has_nested_mounts(config: BlockDeviceConfig) -> bool:
    points = config.mount_points()
    return any(below(b, a) for a in points for b in points if a != b)


@dataclass
class DiskResult:
    raw: Path
    plan: DiskPlan
    timings: dict[str, float]


def tree_size(tree: Path) -> int:
    """Bytes allocated by the tree (``du -s -x``, DIB's measure)."""
    result = runner.run(["du", "-s", "-x", "-B1", str(tree)], what="measure the tree size")
    return int(result.stdout.split()[0])


def build_disk(plan: DiskPlan, tree: Path, raw: Path,
               dev_nodes: Sequence[DevEntry] = (), epoch: int | None = None) -> DiskResult:
    """Write the partition table and every filesystem, populated from ``tree``
    and given the /dev entries it lacks (``dib.runtime.devnodes``). ``epoch``:
    the build's SOURCE_DATE_EPOCH (an element may set it, so it is the
    build's, not this process's), the latest time the filesystems hold."""
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
            _make_filesystem(plan, fs, tree, raw, Path(scratch), dev_nodes, epoch)
            timings[f"mkfs {fs.name}"] = time.monotonic() - t0
    timings["total"] = time.monotonic() - start
    return DiskResult(raw=raw, plan=plan, timings=timings)


def patch_disk(plan: DiskPlan, tree: Path, raw: Path, paths: list[str],
               dev_nodes: Sequence[DevEntry] = ()) -> DiskResult:
    """Bring a disk made from an earlier state of the tree, with this same
    plan, up to date: ext filesystems get just ``paths`` (relative to the
    tree's root) rewritten; every other filesystem is small and made again.
    Raises CannotPatch when a change cannot be written in place."""
    tree, raw = Path(tree), Path(raw)
    # The kept disk holds these entries though the tree does not: a patch
    # would take them out again.
    clash = sorted({e.path for e in dev_nodes} & {p.strip("/") for p in paths})
    if clash:
        raise CannotPatch(f"/{clash[0]} changed, and the disk holds it as a device entry")
    timings: dict[str, float] = {}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dib-disk-", dir=raw.parent) as scratch:
        for fs in plan.filesystems:
            t0 = time.monotonic()
            if fs.type in EXT_TYPES:
                mine = paths_on(plan, fs, paths)
                if mine:
                    source = tree / (fs.mount_point or "/").lstrip("/")
                    update_ext_fs(raw, fs.offset, source, mine, Path(scratch))
            else:
                zero_range(raw, fs.offset, fs.size)
                _make_filesystem(plan, fs, tree, raw, Path(scratch), dev_nodes)
            timings[f"update {fs.name}"] = time.monotonic() - t0
    timings["total"] = time.monotonic() - start
    return DiskResult(raw=raw, plan=plan, timings=timings)


def _make_filesystem(plan: DiskPlan, fs: FilesystemPlan, tree: Path, raw: Path,
                     scratch: Path, dev_nodes: Sequence[DevEntry] = (),
                     epoch: int | None = None) -> None:
    mp = fs.mount_point if fs.mount_point != "none" else None
    src = tree / mp.lstrip("/") if mp else None
    nested = nested_mounts(plan, fs)
    if fs.type in EXT_TYPES:
        _mkfs_ext(fs, raw, src, tree, nested, scratch, entries_on(plan, fs, dev_nodes), epoch)
    elif fs.type in ("vfat", "fat"):
        _mkfs_fat(fs, raw, src, tree, nested, plan.sector_size, epoch)
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


def entries_on(plan: DiskPlan, fs: FilesystemPlan,
               dev_nodes: Sequence[DevEntry]) -> list[DevEntry]:
    """The entries that live on ``fs``, with paths relative to its root."""
    found = []
    for entry in dev_nodes:
        for path in paths_on(plan, fs, [entry.path]):
            found.append(replace(entry, path=path))
    return found


def _mkfs_ext(fs: FilesystemPlan, raw: Path, src: Path | None, tree: Path,
              nested: list[str], scratch: Path, dev_nodes: Sequence[DevEntry] = (),
              epoch: int | None = None) -> None:
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
    env = _fake_time_env(epoch)
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
    late: list[str] = []
    if populate and epoch is not None:
        keep_out = [os.path.relpath(tree / p.lstrip("/"), src) for p in nested]
        late = reproducible.late_paths(src, epoch, keep_out)
        unnamed = [p for p in late if any(c in p for c in _DEBUGFS_UNNAMEABLE)]
        if unnamed:
            raise BlockDeviceError(
                f"mkfs '{fs.name}': {fs.mount_point}/{unnamed[0]} has a line break in its "
                "name, and debugfs cannot name it to set its time to SOURCE_DATE_EPOCH",
                hint="rename it in a hook, or build without SOURCE_DATE_EPOCH")
    runner.run(argv, env=env, what=f"mkfs.{fs.type} of '{fs.name}'")
    if populate and dev_nodes:
        add_dev_entries(fs, raw, dev_nodes, scratch, epoch)
    if populate and epoch is not None:
        settle_ext_times(raw, fs.offset, epoch, scratch, late)


_GROUP_RE = re.compile(r"^Group (\d+):")
#: the root directory, the one reserved inode that ``mkfs -d`` copies from the tree
_ROOT_INODE = 2


def used_inodes(dumpe2fs_text: str) -> list[int]:
    """Inode numbers in use, read from dumpe2fs's per-group "Free inodes"
    ranges: every inode of a group that is not listed as free."""
    per_group = first = 0
    used: list[int] = []
    group: int | None = None
    for line in dumpe2fs_text.splitlines():
        text = line.strip()
        if text.startswith("Inodes per group:"):
            per_group = int(text.split(":")[1])
        elif text.startswith("First inode:"):
            first = int(text.split(":")[1])
        elif _GROUP_RE.match(text):
            group = int(_GROUP_RE.match(text).group(1))
        elif text.startswith("Free inodes:") and group is not None and per_group:
            low, high = group * per_group + 1, (group + 1) * per_group
            free: set[int] = set()
            for part in filter(None, (p.strip() for p in text.split(":", 1)[1].split(","))):
                start, _, end = part.partition("-")
                free.update(range(int(start), int(end or start) + 1))
            used.extend(n for n in range(low, high + 1) if n not in free)
            group = None
    return [n for n in used if n >= first or n == _ROOT_INODE]


#: what a debugfs script cannot hold in a quoted name
_DEBUGFS_UNNAMEABLE = "\n\r"


def settle_ext_times(raw: Path, offset: int, epoch: int, scratch: Path,
                     late: Sequence[str] = ()) -> None:
    """``mkfs -d`` copies each file's times from the tree: when the build
    read the file, made it and last wrote it. Set atime and ctime to
    SOURCE_DATE_EPOCH in every inode the tree filled, and the mtime of each
    of ``late`` (paths relative to the filesystem's root, those the tree has
    later than SOURCE_DATE_EPOCH)."""
    device = f"{raw}?offset={offset}"
    env = _fake_time_env(epoch)
    listing = runner.run(["dumpe2fs", device], env=env,
                         what="dumpe2fs (find the inodes mkfs filled)").stdout
    commands = [f"sif <{n}> {field} @{epoch}" for n in used_inodes(listing)
                for field in ("atime", "ctime")]
    commands += [f"sif {_debugfs_name(path)} mtime @{epoch}" for path in late]
    script = scratch / "settle-times"
    script.write_bytes(os.fsencode("\n".join(commands) + "\n"))
    result = runner.run(["debugfs", "-w", "-f", str(script), device], env=env,
                        what="debugfs (set file times to SOURCE_DATE_EPOCH)")
    script.unlink()
    _check_debugfs(result.stderr, "setting file times to SOURCE_DATE_EPOCH failed")


def _debugfs_name(path: str) -> str:
    """``path`` (relative to the filesystem's root) quoted for a debugfs
    script, in which a doubled quote stands for one."""
    if not path:
        return f"<{_ROOT_INODE}>"
    return '"/' + path.replace('"', '""') + '"'


def _check_debugfs(stderr: str, what: str) -> None:
    """debugfs reports a failed command on stderr and still exits 0."""
    complaints = [line for line in stderr.splitlines()
                  if line.strip() and not line.startswith("debugfs ")]
    if complaints:
        raise BlockDeviceError(f"{what}: " + "; ".join(complaints[:3]))


_EXT_KINDS = {CHAR: stat.S_IFCHR, LINK: stat.S_IFLNK, DIR: stat.S_IFDIR}


def debugfs_dev_commands(entries: Sequence[DevEntry]) -> list[str]:
    """debugfs commands that make each entry (paths relative to the
    filesystem's root) with its mode, owner and times. debugfs's mknod
    names its node in the current directory, so each is made from there."""
    commands = []
    for entry in entries:
        node, where = entry.node, f'"/{entry.path}"'
        parent, _, name = entry.path.rpartition("/")
        commands.append(f'cd "/{parent}"')
        if node.kind == CHAR:
            commands.append(f'mknod "{name}" c {node.major} {node.minor}')
        elif node.kind == LINK:
            commands.append(f'symlink "{name}" "{node.target}"')
        else:
            commands.append(f'mkdir "{name}"')
        commands += [f"sif {where} mode 0{_EXT_KINDS[node.kind] | node.mode:o}",
                     f"sif {where} uid {entry.uid}", f"sif {where} gid {entry.gid}"]
        commands += [f"sif {where} {field} @{entry.mtime}" for field in ("atime", "mtime", "ctime")]
    return commands


def add_dev_entries(fs: FilesystemPlan, raw: Path, entries: Sequence[DevEntry],
                    scratch: Path, epoch: int | None = None) -> None:
    """Write the entries into the filesystem ``mkfs -d`` just made (which
    cannot hold them yet: they are what its tree lacks)."""
    script = scratch / "dev-entries"
    script.write_text("\n".join(debugfs_dev_commands(entries)) + "\n")
    result = runner.run(["debugfs", "-w", "-f", str(script), f"{raw}?offset={fs.offset}"],
                        env=_fake_time_env(epoch),
                        what=f"debugfs (add the /dev entries to '{fs.name}')")
    script.unlink()
    _check_debugfs(result.stderr, f"mkfs '{fs.name}': adding the /dev entries failed")


def _fake_time_env(epoch: int | None) -> dict[str, str]:
    """The environment for e2fsprogs: with ``epoch``, it is their clock."""
    env = dict(os.environ)
    if epoch is not None:
        env["E2FSPROGS_FAKE_TIME"] = str(epoch)
    return env


def mtools_env(epoch: int | None = None) -> dict[str, str]:
    """The environment for mtools; with ``epoch``, their clock
    (SOURCE_DATE_EPOCH) for the entries they make."""
    env = dict(os.environ)
    env["MTOOLS_SKIP_CHECK"] = "1"
    env["MTOOLS_NO_VFAT"] = "0"
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    return env


def _mkfs_fat(fs: FilesystemPlan, raw: Path, src: Path | None, tree: Path,
              nested: list[str], sector: int, epoch: int | None = None) -> None:
    argv = ["mkfs.fat"]
    if fs.size >= 64 * sizes.MiB:
        argv += ["-F", "32", "-s", "1"]   # 1-sector clusters: enough clusters for FAT32
    if sector != 512:
        argv += ["-S", str(sector)]
    argv += ["-n", fs.label]
    reproducible = epoch is not None
    if reproducible:
        # mkfs.fat stamps the volume label's entry with the current time; its
        # --invariant uses a fixed one but a fixed volume id too, so the id
        # is set afterwards with mlabel (which honours SOURCE_DATE_EPOCH).
        argv.append("--invariant")
    elif fs.uuid:
        argv += ["-i", fs.uuid.replace("-", "")]
    if fs.opts:
        argv += shlex.split(fs.opts)
    argv += ["--offset", str(fs.offset // sector), str(raw), str(fs.size // 1024)]
    runner.run(argv, what=f"mkfs.fat of '{fs.name}'")
    if reproducible and fs.uuid:
        runner.run(["mlabel", "-i", f"{raw}@@{fs.offset}", "-N", fs.uuid.replace("-", ""),
                    f"::{fs.label}"], env=mtools_env(epoch),
                   what=f"mlabel (volume id of '{fs.name}')")
    if src is None or not src.is_dir():
        return
    excluded = {tree / p.lstrip("/") for p in nested}
    _mcopy_tree(raw, fs.offset, src, "::", excluded, epoch)


def _mcopy_tree(raw: Path, offset: int, src: Path, dest: str, excluded: set[Path],
                epoch: int | None = None) -> None:
    """Copy ``src`` into the FAT filesystem, each entry with its time in the
    tree; with ``epoch``, every entry with that time (the tree's own times
    are those of the build)."""
    image = f"{raw}@@{offset}"
    env = mtools_env(epoch)
    times = ["-m"] if epoch is None else []
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
        runner.run(["mcopy", "-s", "-p", *times, "-Q", "-D", "o", "-i", image, *plain,
                    f"{dest}/"], env=env, what="mcopy (populate the FAT filesystem)")
    for entry in descend:
        runner.run(["mmd", "-i", image, f"{dest}/{entry.name}"], env=env, what="mmd")
        _mcopy_tree(raw, offset, entry, f"{dest}/{entry.name}", excluded, epoch)


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
