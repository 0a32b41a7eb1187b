"""Two builds' output files compared: which differ, and what inside them.

Every file is compared by SHA-256 first. For a file that differs the report
says where: a tar's members (name, owner, mode, mtime, contents); a disk
image's partitions and, on an ext filesystem, the files whose data or inode
the differing blocks belong to (debugfs, nothing mounted); a qcow2 or vhd
first by the disk it holds (``qemu-img compare``), then as a raw disk; a
small text file as a unified diff. None of this needs diffoscope; when it is
installed the build runs it too (``dib.pipeline.reproducible``).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import struct
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dib import runner
from dib.outputs.base import file_digest

#: how many differing entries one file's report lists before it summarises
LIMIT = 40
_BLOCK = 4096
_CHUNK = 1 << 20
_EXT_MAGIC = 0xEF53
#: output types held in a disk-image container that qemu-img reads
CONTAINERS = {".qcow2": "qcow2", ".vhd": "vpc"}
_TEXT_LIMIT = 1 << 20
#: the check's own report, beside the outputs but not one of them
REPORT_SUFFIX = ".reproducible.txt"


@dataclass
class FileComparison:
    name: str                       # path relative to the output directory
    first: str | None               # SHA-256, None when the first build lacks it
    second: str | None
    details: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.first is not None and self.first == self.second


def compare_files(first: dict[str, Path], second: dict[str, Path]) -> list[FileComparison]:
    """Each name in either build, by SHA-256; what differs inside those that differ."""
    results = []
    for name in sorted(set(first) | set(second)):
        a, b = first.get(name), second.get(name)
        result = FileComparison(name, file_digest(a) if a else None,
                                file_digest(b) if b else None)
        if a is None or b is None:
            result.details.append("only the %s build wrote it" % ("second" if a is None
                                                                   else "first"))
        elif not result.same:
            result.details = describe(a, b)
        results.append(result)
    return results


def describe(a: Path, b: Path) -> list[str]:
    """Lines saying what differs between two versions of one output file."""
    if a.stat().st_size != b.stat().st_size:
        head = [f"size {a.stat().st_size} != {b.stat().st_size}"]
    else:
        head = []
    suffix = a.suffix
    if suffix in (".tar",) or a.name.endswith(".docker.tar"):
        return head + tar_differences(a, b)
    if suffix == ".raw":
        return head + disk_differences(a, b)
    if suffix in CONTAINERS:
        return head + container_differences(a, b, CONTAINERS[suffix])
    text = _text_diff(a, b)
    return head + (text if text is not None else ["contents differ (binary)"])


# -- tar ------------------------------------------------------------------

def tar_members(path: Path) -> tuple[list[str], dict[str, tuple]]:
    """Member names in archive order, and each one's metadata and data digest."""
    order: list[str] = []
    members: dict[str, tuple] = {}
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            digest = ""
            if info.isfile():
                fh = tar.extractfile(info)
                h = hashlib.sha256()
                for block in iter(lambda: fh.read(_CHUNK), b""):
                    h.update(block)
                digest = h.hexdigest()
            pax = {k: v for k, v in info.pax_headers.items() if k not in ("path", "linkpath")}
            order.append(info.name)
            members[info.name] = (
                ("type", info.type), ("mode", oct(info.mode)), ("owner", f"{info.uid}:{info.gid}"),
                ("mtime", int(info.mtime)), ("size", info.size), ("link", info.linkname),
                ("device", f"{info.devmajor},{info.devminor}"),
                ("pax headers", json.dumps(pax, sort_keys=True)), ("contents", digest))
    return order, members


def tar_differences(a: Path, b: Path) -> list[str]:
    order_a, first = tar_members(a)
    order_b, second = tar_members(b)
    lines = [f"only in the first: {n}" for n in order_a if n not in second]
    lines += [f"only in the second: {n}" for n in order_b if n not in first]
    for name in order_a:
        if name in second and first[name] != second[name]:
            what = [f"{k} {x!r} != {y!r}" if k != "contents" else "contents"
                    for (k, x), (_, y) in zip(first[name], second[name]) if x != y]
            lines.append(f"{name}: {', '.join(what)}")
    if not lines and order_a != order_b:
        lines.append("the same members in a different order")
    if not lines:
        lines.append("the same members; the archive's own headers differ")
    return _limited(lines)


# -- disks ----------------------------------------------------------------

@dataclass(frozen=True)
class Region:
    name: str      # "partition 2", or "the whole disk"
    start: int     # bytes
    size: int


def partitions(raw: Path) -> list[Region]:
    """The partitions sfdisk finds, or the whole file when it has no table."""
    result = runner.run(["sfdisk", "--json", str(raw)], check=False,
                        what="sfdisk (read the partition table)")
    if not result.ok or not result.stdout.strip():
        return [Region("the whole disk", 0, raw.stat().st_size)]
    table = json.loads(result.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    return [Region(f"partition {n}", int(p["start"]) * sector, int(p["size"]) * sector)
            for n, p in enumerate(table.get("partitions", []), start=1)]


def differing_blocks(a: Path, b: Path, block: int = _BLOCK) -> list[int]:
    """Byte offsets of the ``block``-sized pieces in which two files differ."""
    found: list[int] = []
    with open(a, "rb") as fa, open(b, "rb") as fb:
        offset = 0
        while True:
            x, y = fa.read(_CHUNK), fb.read(_CHUNK)
            if not x and not y:
                return found
            if x != y:
                for at in range(0, max(len(x), len(y)), block):
                    if x[at:at + block] != y[at:at + block]:
                        found.append(offset + at)
            offset += _CHUNK


def disk_differences(a: Path, b: Path) -> list[str]:
    blocks = differing_blocks(a, b)
    regions = partitions(a)
    lines: list[str] = []
    outside = [o for o in blocks if not any(r.start <= o < r.start + r.size for r in regions)]
    if outside:
        lines.append(f"{len(outside)} blocks of {_BLOCK} bytes outside any partition "
                     "(partition table, boot code)")
    for region in regions:
        mine = [o - region.start for o in blocks if region.start <= o < region.start + region.size]
        if not mine:
            continue
        if ext_block_size(a, region.start) is None:
            lines.append(f"{region.name}: {len(mine)} blocks of {_BLOCK} bytes differ "
                         "(not an ext filesystem: not looked into)")
            continue
        lines.append(f"{region.name} (ext filesystem): {len(mine)} blocks of {_BLOCK} bytes "
                     "differ, in:")
        lines += ["  " + line for line in ext_owners(a, region.start, mine)]
    return _limited(lines)


def ext_block_size(raw: Path, offset: int) -> int | None:
    with open(raw, "rb") as fh:
        fh.seek(offset + 1024)
        sb = fh.read(64)
    if len(sb) < 64 or struct.unpack_from("<H", sb, 0x38)[0] != _EXT_MAGIC:
        return None
    return 1024 << struct.unpack_from("<I", sb, 0x18)[0]


def ext_owners(raw: Path, offset: int, byte_offsets: list[int]) -> list[str]:
    """The paths owning the filesystem blocks at these offsets (relative to
    the filesystem): their data, or their inode in the inode table; the
    rest is the filesystem's own metadata."""
    size = ext_block_size(raw, offset) or _BLOCK
    blocks = sorted({o // size + i for o in byte_offsets for i in range(max(1, _BLOCK // size))})
    device = f"{raw}?offset={offset}"
    tables = inode_tables(runner.run(["dumpe2fs", device], check=False,
                                     what="dumpe2fs (where the inode tables are)").stdout)
    inodes: dict[int, str] = {}
    in_table = [b for b in blocks if _table_inodes(tables, b, size)]
    for block in in_table:
        for inode in _table_inodes(tables, block, size):
            inodes.setdefault(inode, "inode")
    rest = [b for b in blocks if b not in in_table]
    owners = _icheck(device, rest)
    for inode in owners.values():
        inodes[inode] = "data"
    names = _ncheck(device, sorted(inodes))
    lines = sorted({f"{names[i]} ({inodes[i]})" for i in inodes if i in names})
    unowned = len([b for b in rest if b not in owners])
    if unowned:
        lines.append(f"{unowned} filesystem metadata blocks (superblock, bitmaps, journal)")
    return lines


@dataclass(frozen=True)
class InodeTables:
    per_group: int
    inode_size: int
    starts: tuple[int, ...]     # first block of each group's inode table


def inode_tables(text: str) -> InodeTables:
    per_group = re.search(r"^Inodes per group:\s+(\d+)", text, re.M)
    inode_size = re.search(r"^Inode size:\s+(\d+)", text, re.M)
    starts = tuple(int(m.group(1)) for m in re.finditer(r"Inode table at (\d+)-", text))
    return InodeTables(int(per_group.group(1)) if per_group else 0,
                       int(inode_size.group(1)) if inode_size else 256, starts)


def _table_inodes(tables: InodeTables, block: int, block_size: int) -> range:
    """The inode numbers stored in ``block`` when it is part of an inode table."""
    per_block = block_size // tables.inode_size
    table_blocks = -(-tables.per_group // per_block) if per_block else 0
    for group, start in enumerate(tables.starts):
        if start <= block < start + table_blocks:
            first = group * tables.per_group + (block - start) * per_block + 1
            return range(first, first + per_block)
    return range(0)


def _debugfs(device: str, command: str) -> str:
    return runner.run(["debugfs", "-R", command, device], check=False,
                      what="debugfs (which files own the blocks)").stdout


def _icheck(device: str, blocks: list[int]) -> dict[int, int]:
    found: dict[int, int] = {}
    for at in range(0, len(blocks), 500):
        chunk = blocks[at:at + 500]
        for line in _debugfs(device, "icheck " + " ".join(map(str, chunk))).splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
                found[int(fields[0])] = int(fields[1])
    return found


def _ncheck(device: str, inodes: list[int]) -> dict[int, str]:
    names: dict[int, str] = {}
    for at in range(0, len(inodes), 500):
        chunk = inodes[at:at + 500]
        for line in _debugfs(device, "ncheck " + " ".join(map(str, chunk))).splitlines():
            number, _, path = line.strip().partition("\t")
            if number.isdigit() and path:
                names.setdefault(int(number), path)
    return names


def container_differences(a: Path, b: Path, fmt: str) -> list[str]:
    """A qcow2 or vhd: the disk it holds first; as a raw disk when that differs."""
    same = runner.run(["qemu-img", "compare", "-f", fmt, "-F", fmt, str(a), str(b)],
                      check=False, what="qemu-img compare")
    if same.returncode == 0:
        return ["the disk inside is the same; only the file's own layout "
                f"({fmt} header, cluster order or compression) differs"]
    if same.returncode != 1:   # 1: the disks differ; anything else: unreadable
        reason = (same.stderr.strip().splitlines() or ["no message"])[-1]
        return [f"qemu-img cannot read them as {fmt}: {reason}"]
    with tempfile.TemporaryDirectory(prefix="dib-compare-", dir=b.parent) as tmp:
        raws = []
        for n, path in enumerate((a, b)):
            raw = Path(tmp) / f"{n}.raw"
            runner.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(raw)],
                       what=f"qemu-img convert (read {path.name} as a raw disk)")
            raws.append(raw)
        return ["the disk inside differs:"] + disk_differences(*raws)


# -- the rest ---------------------------------------------------------------

def _text_diff(a: Path, b: Path) -> list[str] | None:
    if max(a.stat().st_size, b.stat().st_size) > _TEXT_LIMIT:
        return None
    try:
        x, y = a.read_text(), b.read_text()
    except UnicodeDecodeError:
        return None
    if a.suffix == ".json":
        x, y = (_pretty_json(t) for t in (x, y))
    diff = difflib.unified_diff(x.splitlines(), y.splitlines(), "first", "second",
                                lineterm="", n=1)
    return _limited(list(diff))


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=1, sort_keys=True)
    except ValueError:
        return text


def _limited(lines: list[str]) -> list[str]:
    if len(lines) <= LIMIT:
        return lines
    return lines[:LIMIT] + [f"... and {len(lines) - LIMIT} more"]


def output_files(directory: Path, image_name: str) -> dict[str, Path]:
    """What one build wrote into ``directory``: files named after the image
    (NAME.qcow2, NAME.spdx.json…) and everything in NAME.d/; not the
    report of an earlier check."""
    found: dict[str, Path] = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = Path(root) / name
            relative = path.relative_to(directory)
            top = relative.parts[0]
            if top.endswith(REPORT_SUFFIX):
                continue
            if top == f"{image_name}.d" or (len(relative.parts) == 1 and
                                           top.startswith(f"{image_name}.")):
                found[str(relative)] = path
    return found


def report_text(results: list[FileComparison]) -> str:
    differ = [r for r in results if not r.same]
    lines = [f"{len(results) - len(differ)} of {len(results)} output files are identical"]
    for result in results:
        if result.same:
            lines.append(f"  same    {result.name}  sha256:{result.first}")
    for result in differ:
        lines.append(f"  DIFFERS {result.name}")
        lines += [f"      {line}" for line in result.details]
    return "\n".join(lines) + "\n"
