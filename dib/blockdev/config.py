"""DIB block-device YAML → a validated graph of plugin nodes.

The YAML is a list of single-key maps; each key names a plugin (looked up in
the stevedore group ``dib.block_device``).  Tree notation nests children under
their parent (a child's ``base`` is its parent's name and a missing ``name``
becomes ``<plugin>_<base>``); graph notation gives ``name``/``base``
explicitly; both may be mixed.  ``partitions:`` under ``partitioning`` is a
list of partitions whose own plugin children are lifted out as nodes based
on the partition.

Everything is checked here, before any work: every error names the node and
says how to fix it.
"""
from __future__ import annotations

import difflib
import graphlib
import hashlib
import os
import re
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from dib.blockdev import sizes
from dib.blockdev.registry import PluginRegistry
from dib.errors import BlockDeviceError, PreflightError

GROUP = "dib.block_device"

#: fs type → longest label mkfs accepts (DIB's table)
LABEL_MAX = {"ext2": 16, "ext3": 16, "ext4": 16, "xfs": 12, "vfat": 11, "fat": 11,
             "swap": 16, "btrfs": 255}
FS_TYPES = ("ext2", "ext3", "ext4", "xfs", "vfat", "fat", "swap", "btrfs")
_LABEL_RE = re.compile(r"^[A-Za-z0-9._@:+-]+$")
_FAT_LABEL_RE = re.compile(r"^[A-Z0-9_-]+$")

#: sgdisk-style 4-hex-digit GPT type codes → partition type GUIDs
GPT_TYPES = {
    "8300": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",  # Linux filesystem
    "8304": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",  # Linux x86-64 root
    "8302": "933AC7E1-2EB4-4F13-B844-0E14E2AEF915",  # Linux /home
    "8310": "4D21B016-B534-45C2-A9FB-5C16E091FD2D",  # Linux /var
    "8200": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",  # Linux swap
    "8E00": "E6D6D379-F507-44C2-A23C-238F2A3DF928",  # Linux LVM
    "FD00": "A19D880F-05FC-4D3B-A006-743F0F84911E",  # Linux RAID
    "EF00": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",  # EFI system partition
    "EF02": "21686148-6449-6E6F-744E-656564454649",  # BIOS boot partition
    "EA00": "BC13C2FF-59E6-4262-A352-B275FD6F7172",  # XBOOTLDR
    "0700": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",  # Microsoft basic data
    "4100": "9E1A2D38-C612-4316-AA26-8B49521E5A8B",  # PowerPC PReP boot
}
ESP_GUID = GPT_TYPES["EF00"]
BIOS_BOOT_GUID = GPT_TYPES["EF02"]
_GUID_RE = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                      r"[0-9A-Fa-f]{12}$")

#: the config DIB uses when no element supplies one: no partition table
DEFAULT_CONFIG_YAML = """\
- local_loop:
    name: image0
- mkfs:
    name: mkfs_root
    base: image0
    mount:
      mount_point: /
      fstab:
        options: defaults
        fsck-passno: 1
"""

_NS = uuidlib.UUID("5d1b0c6e-4f0a-4bd2-9c36-7a3e2f1b6a90")


def _fail(node: str, plugin: str, problem: str, fix: str) -> BlockDeviceError:
    return BlockDeviceError(f"block-device config: {plugin} '{node}': {problem}", hint=fix)


# --------------------------------------------------------------------- nodes

@dataclass
class Node:
    """One vertex of the block-device graph."""

    plugin: ClassVar[str] = ""
    options: ClassVar[tuple[str, ...]] = ()
    name: str
    base: str | None

    @classmethod
    def from_config(cls, name: str, base: str | None, values: dict[str, Any]) -> list["Node"]:
        raise NotImplementedError

    @classmethod
    def _check_options(cls, name: str, values: dict[str, Any]) -> None:
        for key in values:
            if key not in cls.options:
                close = difflib.get_close_matches(key, list(cls.options) + _plugins.names(), 1)
                fix = (f"did you mean '{close[0]}'?" if close
                       else f"valid options: {', '.join(cls.options) or 'none'}")
                raise _fail(name, cls.plugin, f"unknown option or plugin '{key}'", fix)

    def edges(self) -> list[str]:
        """Names of the nodes this one depends on."""
        return [self.base] if self.base else []


@dataclass
class LocalLoop(Node):
    plugin: ClassVar[str] = "local_loop"
    options: ClassVar[tuple[str, ...]] = ("size", "directory", "block_size")
    size: str | int | None = None
    directory: str | None = None
    block_size: int = 512

    @classmethod
    def from_config(cls, name, base, values):
        cls._check_options(name, values)
        block_size = values.get("block_size", 512)
        if block_size not in (512, 4096):
            raise _fail(name, cls.plugin, f"block_size {block_size!r} is not supported",
                        "use 512 or 4096")
        size = values.get("size")
        if size is not None:
            sizes.parse_size(size, what=f"size of local_loop '{name}'")
        return [cls(name=name, base=None, size=size, directory=values.get("directory"),
                    block_size=int(block_size))]


@dataclass
class Partition(Node):
    plugin: ClassVar[str] = "partition"
    options: ClassVar[tuple[str, ...]] = ("name", "size", "flags", "type", "uuid", "label")
    size: str | int = ""
    flags: tuple[str, ...] = ()
    type: str = ""            # gpt: type GUID; mbr: two hex digits
    number: int = 0           # filled in by Partitioning
    table: str = ""           # name of the partitioning node
    partuuid: str | None = None
    gpt_name: str | None = None

    @property
    def bootable(self) -> bool:
        return "boot" in self.flags

    @property
    def primary(self) -> bool:
        return "primary" in self.flags


@dataclass
class Partitioning(Node):
    plugin: ClassVar[str] = "partitioning"
    options: ClassVar[tuple[str, ...]] = ("label", "align", "partitions")
    label: str = "mbr"
    align: int = sizes.MiB
    partitions: list[str] = field(default_factory=list)
    disk_id: str | None = None

    @classmethod
    def from_config(cls, name, base, values):
        cls._check_options(name, values)
        if not base:
            raise _fail(name, cls.plugin, "has no base", "set base: to a local_loop name, "
                        "e.g. image0, or nest it under the local_loop")
        label = values.get("label")
        if label not in ("mbr", "gpt"):
            raise _fail(name, cls.plugin, f"label {label!r} is not a partition table type",
                        "set label: mbr or label: gpt")
        align = sizes.MiB
        if "align" in values:
            if label == "gpt":
                raise _fail(name, cls.plugin, "align is only supported for mbr",
                            "remove align: (gpt partitions are aligned to 1MiB)")
            align = sizes.parse_size(values["align"], what=f"align of '{name}'")
            if align < 512 or align % 512:
                raise _fail(name, cls.plugin, f"align {values['align']!r} is not a "
                            "multiple of 512 bytes", "use e.g. 1MiB")
        parts = values.get("partitions")
        if not isinstance(parts, list) or not parts:
            raise _fail(name, cls.plugin, "has no partitions",
                        "add a partitions: list with at least one {name, size} entry")
        node = cls(name=name, base=base, label=label, align=align)
        out: list[Node] = [node]
        for index, pvals in enumerate(parts, start=1):
            out.append(_make_partition(node, index, pvals))
        node.partitions = [p.name for p in out[1:]]
        if label == "mbr":
            primaries = [p for p in out[1:] if p.primary]
            logicals = [p for p in out[1:] if not p.primary]
            if len(primaries) + (1 if logicals else 0) > 4:
                raise _fail(name, cls.plugin, "an MBR holds at most 4 primary partitions "
                            "(3 when there are logical ones)",
                            "remove the primary flag from some partitions")
            number = 1
            for p in primaries:
                p.number, number = number, number + 1
            for number, p in enumerate(logicals, start=5):
                p.number = number
        else:
            if len(out) - 1 > 128:
                raise _fail(name, cls.plugin, "more than 128 GPT partitions", "use fewer")
            for number, p in enumerate(out[1:], start=1):
                p.number = number
        return out

    def ordered_partitions(self, config: "BlockDeviceConfig") -> list[Partition]:
        """Partitions in on-disk order (mbr: primaries first, then logicals)."""
        parts = [config.nodes[n] for n in self.partitions]
        return sorted(parts, key=lambda p: p.number)  # type: ignore[arg-type, return-value]


def _make_partition(table: Partitioning, index: int, pvals: Any) -> Partition:
    where = f"partition #{index} of partitioning '{table.name}'"
    if not isinstance(pvals, dict):
        raise BlockDeviceError(f"block-device config: {where} is not a map",
                               hint="each partitions: entry is a map with name: and size:")
    name = pvals.get("name")
    if not name or not isinstance(name, str):
        raise BlockDeviceError(f"block-device config: {where} has no name",
                               hint="give every partition a name: (e.g. root)")
    Partition._check_options(name, {k: v for k, v in pvals.items() if k != "_children"})
    if "size" not in pvals:
        raise _fail(name, "partition", "has no size",
                    "set size: to an absolute size (e.g. 8MiB) or a percentage "
                    "of the remaining space (e.g. 100%)")
    size = pvals["size"]
    if not sizes.is_relative(size):
        sizes.parse_size(size, what=f"size of partition '{name}'")
    else:
        sizes.parse_size(size, available=100, what=f"size of partition '{name}'")
    flags = pvals.get("flags") or []
    if isinstance(flags, str):
        flags = [flags]
    for flag in flags:
        if flag not in ("boot", "primary"):
            raise _fail(name, "partition", f"unknown flag {flag!r}",
                        "valid flags are boot and primary")
    if table.label == "gpt" and "primary" in flags:
        raise _fail(name, "partition", "the primary flag only applies to mbr tables",
                    "remove 'primary' from flags: (every gpt partition is primary)")
    ptype = pvals.get("type")
    if table.label == "gpt":
        gtype = _gpt_type(name, ptype)
        ptype_s = gtype
    else:
        ptype_s = _mbr_type(name, ptype)
    partuuid = pvals.get("uuid")
    if partuuid is not None:
        if table.label != "gpt" or not _GUID_RE.match(str(partuuid)):
            raise _fail(name, "partition", f"uuid {partuuid!r} is not usable",
                        "give a GUID (gpt only), or leave it out for a fixed derived one")
        partuuid = str(partuuid).lower()
    return Partition(name=name, base=table.name, size=size, flags=tuple(flags),
                     type=ptype_s, table=table.name, partuuid=partuuid,
                     gpt_name=pvals.get("label", name))


def _gpt_type(name: str, value: Any) -> str:
    if value is None:
        return GPT_TYPES["8300"]
    text = (f"{value:04X}" if isinstance(value, int) and not isinstance(value, bool)
            else str(value)).strip()
    if text.lower().startswith("0x"):
        text = text[2:]
    if text.upper() in GPT_TYPES:
        return GPT_TYPES[text.upper()]
    if _GUID_RE.match(text):
        return text.upper()
    raise _fail(name, "partition", f"gpt type {value!r} is not known",
                f"use a type GUID or one of {', '.join(sorted(GPT_TYPES))}")


def _mbr_type(name: str, value: Any) -> str:
    if value is None:
        return "83"
    try:
        number = value if isinstance(value, int) and not isinstance(value, bool) \
            else int(str(value), 16)
    except ValueError:
        number = -1
    if not 0 < number <= 0xFF or number in (0x05, 0x0F, 0x85):
        raise _fail(name, "partition", f"mbr type {value!r} is not usable",
                    "give a hex byte such as 0x83 (Linux), 0x82 (swap), 0xef (ESP), "
                    "0x8e (LVM); extended partitions are made automatically")
    return f"{number:02x}"


@dataclass
class Mkfs(Node):
    plugin: ClassVar[str] = "mkfs"
    options: ClassVar[tuple[str, ...]] = ("type", "label", "opts", "uuid")
    type: str | None = None
    label: str | None = None
    opts: str | None = None
    uuid: str | None = None
    label_given: bool = False

    @classmethod
    def from_config(cls, name, base, values):
        cls._check_options(name, values)
        if not base:
            raise _fail(name, cls.plugin, "has no base",
                        "set base: to a partition, local_loop or logical volume name")
        opts = values.get("opts")
        return [cls(name=name, base=base, type=values.get("type"), label=values.get("label"),
                    opts=None if opts is None else str(opts),
                    uuid=None if values.get("uuid") is None else str(values["uuid"]),
                    label_given="label" in values)]

    @property
    def fat(self) -> bool:
        return self.type in ("vfat", "fat")

    def finish(self) -> None:
        """Check type and label once overrides are in."""
        if not self.type:
            raise _fail(self.name, self.plugin, "has no type",
                        f"set type: to one of {', '.join(FS_TYPES)}")
        if self.type not in FS_TYPES:
            close = difflib.get_close_matches(self.type, FS_TYPES, 1)
            raise _fail(self.name, self.plugin, f"unknown filesystem type {self.type!r}",
                        f"did you mean {close[0]!r}?" if close
                        else f"use one of {', '.join(FS_TYPES)}")
        if self.label is None:
            self.label = self.name
        self.label = str(self.label)
        if self.fat:
            self.label = self.label.upper()
        pattern = _FAT_LABEL_RE if self.fat else _LABEL_RE
        if not pattern.match(self.label):
            allowed = "A-Z 0-9 _ -" if self.fat else "letters, digits and . _ @ : + -"
            raise _fail(self.name, self.plugin, f"label {self.label!r} has characters that "
                        f"cannot be used here", f"use only {allowed}")
        limit = LABEL_MAX[self.type]
        if len(self.label) > limit:
            raise _fail(self.name, self.plugin,
                        f"label {self.label!r} is {len(self.label)} characters, more than "
                        f"{self.type} allows ({limit})",
                        f"shorten it to {limit} characters or fewer")
        if self.uuid is not None:
            if self.fat:
                if not re.match(r"^[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}$", self.uuid):
                    raise _fail(self.name, self.plugin, f"uuid {self.uuid!r} is not a FAT "
                                "volume id", "use 8 hex digits, e.g. 1234-ABCD")
            else:
                try:
                    self.uuid = str(uuidlib.UUID(self.uuid))
                except ValueError:
                    raise _fail(self.name, self.plugin, f"uuid {self.uuid!r} is not a UUID",
                                "give a UUID or leave it out for a fixed derived one") \
                        from None

    @property
    def fs_uuid(self) -> str | None:
        """The id as blkid and grub's search --fs-uuid spell it."""
        if self.uuid is None:
            return None
        if self.fat:
            raw = self.uuid.replace("-", "")
            return f"{raw[:4]}-{raw[4:8]}".upper()
        return self.uuid


@dataclass
class Mount(Node):
    plugin: ClassVar[str] = "mount"
    options: ClassVar[tuple[str, ...]] = ("mount_point",)
    mount_point: str = ""

    @classmethod
    def from_config(cls, name, base, values):
        cls._check_options(name, values)
        if not base:
            raise _fail(name, cls.plugin, "has no base", "set base: to a mkfs name")
        mp = values.get("mount_point")
        if not isinstance(mp, str) or not (mp == "none" or mp.startswith("/")):
            raise _fail(name, cls.plugin, f"mount_point {mp!r} is not an absolute path",
                        "set mount_point: to a path such as / or /boot/efi "
                        "(or none for swap)")
        if mp != "/" and mp != "none":
            mp = "/" + mp.strip("/")
            if any(part in ("", ".", "..") for part in mp.split("/")[1:]):
                raise _fail(name, cls.plugin, f"mount_point {values['mount_point']!r} "
                            "is not a clean path", "write it like /var/lib")
        return [cls(name=name, base=base, mount_point=mp)]


@dataclass
class Fstab(Node):
    plugin: ClassVar[str] = "fstab"
    options: ClassVar[tuple[str, ...]] = ("options", "dump-freq", "fsck-passno")
    fs_options: str = "defaults"
    dump_freq: int = 0
    fsck_passno: int = 2

    @classmethod
    def from_config(cls, name, base, values):
        cls._check_options(name, values)
        if not base:
            raise _fail(name, cls.plugin, "has no base", "set base: to a mount name")
        try:
            dump = int(values.get("dump-freq", 0))
            passno = int(values.get("fsck-passno", 2))
        except (TypeError, ValueError):
            raise _fail(name, cls.plugin, "dump-freq and fsck-passno must be integers",
                        "use e.g. dump-freq: 0 and fsck-passno: 2") from None
        opts = str(values.get("options", "defaults"))
        if not opts or any(c.isspace() for c in opts):
            raise _fail(name, cls.plugin, f"options {opts!r} are not valid",
                        "give a comma-separated list without spaces, e.g. defaults,noatime")
        return [cls(name=name, base=base, fs_options=opts, dump_freq=dump,
                    fsck_passno=passno)]


@dataclass
class LogicalVolume(Node):
    plugin: ClassVar[str] = "lvm-lv"
    vg: str = ""
    size: str | None = None


@dataclass
class Lvm(Node):
    plugin: ClassVar[str] = "lvm"
    options: ClassVar[tuple[str, ...]] = ("pvs", "vgs", "lvs")
    pvs: list[dict] = field(default_factory=list)
    vgs: list[dict] = field(default_factory=list)
    lvs: list[dict] = field(default_factory=list)
    pv_bases: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, name, base, values):
        cls._check_options(name, values)
        pvs, vgs, lvs = (values.get(k) or [] for k in ("pvs", "vgs", "lvs"))
        if not (isinstance(pvs, list) and isinstance(vgs, list) and isinstance(lvs, list)) \
                or not pvs or not vgs or not lvs:
            raise _fail(name, cls.plugin, "needs non-empty pvs:, vgs: and lvs: lists",
                        "see DIB's lvm plugin documentation for the layout")
        pv_bases, pv_names = [], set()
        for pv in pvs:
            if not isinstance(pv, dict) or "name" not in pv or "base" not in pv:
                raise _fail(name, cls.plugin, f"pv {pv!r} needs name: and base:",
                            "base: is the partition holding the physical volume")
            pv_bases.append(pv["base"])
            pv_names.add(pv["name"])
        vg_names = set()
        for vg in vgs:
            if not isinstance(vg, dict) or "name" not in vg or "base" not in vg:
                raise _fail(name, cls.plugin, f"vg {vg!r} needs name: and base:",
                            "base: lists the pv names of the volume group")
            vbase = vg["base"] if isinstance(vg["base"], list) else [vg["base"]]
            for pv in vbase:
                if pv not in pv_names:
                    raise _fail(name, cls.plugin, f"vg '{vg['name']}' uses unknown pv "
                                f"'{pv}'", f"known pvs: {', '.join(sorted(pv_names))}")
            vg_names.add(vg["name"])
        node = cls(name=name, base=None, pvs=pvs, vgs=vgs, lvs=lvs, pv_bases=pv_bases)
        out: list[Node] = [node]
        for lv in lvs:
            if not isinstance(lv, dict) or "name" not in lv or "base" not in lv:
                raise _fail(name, cls.plugin, f"lv {lv!r} needs name: and base:",
                            "base: is the volume group name")
            if lv["base"] not in vg_names:
                raise _fail(name, cls.plugin, f"lv '{lv['name']}' uses unknown vg "
                            f"'{lv['base']}'", f"known vgs: {', '.join(sorted(vg_names))}")
            if "size" not in lv and "extents" not in lv and lv.get("type") != "thin-pool":
                raise _fail(name, cls.plugin, f"lv '{lv['name']}' has no size",
                            "set size: (e.g. 2GiB) or extents: (e.g. 100%FREE)")
            out.append(LogicalVolume(name=lv["name"], base=name, vg=lv["base"],
                                     size=lv.get("size")))
        return out

    def edges(self) -> list[str]:
        return list(self.pv_bases)


def _builtins() -> dict[str, type[Node]]:
    return {cls.plugin: cls for cls in (LocalLoop, Partitioning, Mkfs, Mount, Fstab, Lvm)}


_plugins: PluginRegistry[type[Node]] = PluginRegistry(GROUP, _builtins)


def plugin_names() -> list[str]:
    return _plugins.names()


# ------------------------------------------------------------- tree → graph

def _flatten(key: str, values: Any, parent: str | None, out: list[tuple[str, str, str | None,
                                                                        dict]]) -> None:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise BlockDeviceError(f"block-device config: the value of '{key}' must be a map, "
                               f"not {type(values).__name__}",
                               hint="write e.g. 'mkfs:' followed by indented options")
    base = values.get("base", parent)
    name = values.get("name") or f"{key}_{base}"
    own: dict[str, Any] = {}
    for k, v in values.items():
        if k in ("name", "base"):
            continue
        if k == "partitions" and key == "partitioning" and isinstance(v, list):
            lifted = []
            for part in v:
                if isinstance(part, dict):
                    pname = part.get("name")
                    kept = {}
                    for pk, pv in part.items():
                        if pk in _plugins and pk not in Partition.options:
                            _flatten(pk, pv, pname, out)
                        else:
                            kept[pk] = pv
                    lifted.append(kept)
                else:
                    lifted.append(part)
            own[k] = lifted
        elif k in _plugins:
            _flatten(k, v, name, out)
        else:
            own[k] = v
    out.append((key, name, base, own))


def config_to_graph(data: Any) -> list[tuple[str, str, str | None, dict]]:
    """Flatten tree notation into (plugin, name, base, options) entries."""
    if data is None:
        data = []
    if not isinstance(data, list):
        raise BlockDeviceError("block-device config must be a YAML list of single-key maps",
                               hint="start each top-level entry with '- local_loop:', "
                                    "'- partitioning:', '- mkfs:' ...")
    out: list[tuple[str, str, str | None, dict]] = []
    for position, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            raise BlockDeviceError(f"block-device config: entry #{position} ({entry!r}) is "
                                   "not a map", hint="each list item is '- PLUGIN: {...}'")
        if len(entry) != 1:
            raise BlockDeviceError(
                f"block-device config: entry #{position} has {len(entry)} top-level keys "
                f"({', '.join(map(str, entry))})",
                hint="each list item must have exactly one key, the plugin; indent "
                     "options under it or start a new '- ' item")
        key = next(iter(entry))
        if key not in _plugins:
            raise BlockDeviceError(
                f"block-device config: entry #{position}: unknown plugin '{key}'"
                f"{_plugins.suggest(key)}",
                hint=f"known plugins: {', '.join(_plugins.names())}")
        _flatten(key, entry[key], None, out)
    return out


# ------------------------------------------------------------------ config

class BlockDeviceConfig:
    """The validated graph. Nodes are kept in file order in ``nodes``."""

    def __init__(self, nodes: list[Node], raw: Any = None) -> None:
        self.raw = raw
        self.nodes: dict[str, Node] = {}
        for node in nodes:
            if node.name in self.nodes:
                other = self.nodes[node.name]
                raise BlockDeviceError(
                    f"block-device config: duplicate name '{node.name}' ({other.plugin} and "
                    f"{node.plugin})", hint="give one of them a different name:")
            self.nodes[node.name] = node
        self.seed: str | None = None

    # -- typed views
    def of(self, cls: type) -> list:
        return [n for n in self.nodes.values() if isinstance(n, cls)]

    @property
    def loops(self) -> list[LocalLoop]:
        return self.of(LocalLoop)

    @property
    def partitionings(self) -> list[Partitioning]:
        return self.of(Partitioning)

    @property
    def partitions(self) -> list[Partition]:
        return self.of(Partition)

    @property
    def filesystems(self) -> list[Mkfs]:
        return self.of(Mkfs)

    @property
    def mounts(self) -> list[Mount]:
        return self.of(Mount)

    @property
    def fstabs(self) -> list[Fstab]:
        return self.of(Fstab)

    @property
    def lvms(self) -> list[Lvm]:
        return self.of(Lvm)

    # -- validation
    def validate(self) -> "BlockDeviceConfig":
        for node in self.nodes.values():
            for edge in node.edges():
                if edge not in self.nodes:
                    close = difflib.get_close_matches(edge, list(self.nodes), 1)
                    raise _fail(node.name, node.plugin, f"base '{edge}' is not defined",
                                f"did you mean '{close[0]}'?" if close else
                                f"defined names: {', '.join(self.nodes)}")
        allowed = {Partitioning: (LocalLoop,), Mkfs: (Partition, LocalLoop, LogicalVolume),
                   Mount: (Mkfs,), Fstab: (Mount,), Lvm: (Partition,)}
        for node in self.nodes.values():
            kinds = allowed.get(type(node))
            if not kinds:
                continue
            for edge in node.edges():
                target = self.nodes[edge]
                if not isinstance(target, kinds):
                    names = " or ".join(k.plugin for k in kinds)
                    raise _fail(node.name, node.plugin, f"base '{edge}' is a "
                                f"{target.plugin}, not a {names}",
                                f"point base: at a {names}")
        if not self.loops:
            raise BlockDeviceError("block-device config has no local_loop",
                                   hint="add '- local_loop: {name: image0}' first")
        if len(self.loops) > 1:
            raise BlockDeviceError(
                "block-device config: more than one local_loop "
                f"({', '.join(n.name for n in self.loops)}) is not supported",
                hint="build one disk per image")
        seen_tables: dict[str, str] = {}
        for table in self.partitionings:
            if table.base in seen_tables:
                raise _fail(table.name, table.plugin, f"'{table.base}' already has the "
                            f"partition table '{seen_tables[table.base]}'",
                            "a disk holds one partition table; merge the partitions lists")
            seen_tables[table.base] = table.name
        users: dict[str, str] = {}
        for fs in self.filesystems:
            fs.finish()
            if fs.base in users:
                raise _fail(fs.name, fs.plugin, f"'{fs.base}' already holds filesystem "
                            f"'{users[fs.base]}'", "give each filesystem its own partition")
            if fs.base in seen_tables:
                raise _fail(fs.name, fs.plugin, f"'{fs.base}' is partitioned "
                            f"('{seen_tables[fs.base]}')", "put the mkfs on a partition")
            users[fs.base] = fs.name
        labels: dict[str, str] = {}
        for fs in self.filesystems:
            if fs.label in labels:
                raise _fail(fs.name, fs.plugin, f"label {fs.label!r} is already used by "
                            f"'{labels[fs.label]}'", "filesystem labels must be unique; "
                            "set a different label:")
            labels[fs.label] = fs.name
        mounted: dict[str, str] = {}
        points: dict[str, str] = {}
        for mount in self.mounts:
            fs = self.nodes[mount.base]
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
        if self.filesystems and "/" not in points:
            raise BlockDeviceError("block-device config: no filesystem is mounted at /",
                                   hint="add 'mount: {mount_point: /}' under the root mkfs "
                                        "(usually mkfs_root)")
        for fstab in self.fstabs:
            pass  # base kind checked above
        for table in self.partitionings:
            self._check_percentages(table)
        try:
            self.order()
        except graphlib.CycleError as exc:
            raise BlockDeviceError(f"block-device config has a cycle: {exc.args[1]}",
                                   hint="check the base: references") from None
        return self

    def _check_percentages(self, table: Partitioning) -> None:
        for part in table.ordered_partitions(self):
            if sizes.is_relative(part.size):
                pass  # range checked when parsed

    def order(self) -> list[str]:
        """Node names in dependency order (bases first)."""
        sorter = graphlib.TopologicalSorter({n.name: n.edges() for n in self.nodes.values()})
        return list(sorter.static_order())

    # -- legacy params
    def apply_overrides(self, *, root_label: str | None = None, fs_type: str | None = None,
                        mkfs_options: str | None = None) -> "BlockDeviceConfig":
        """Patch ``mkfs_root`` like DIB's params: fill what the YAML leaves out."""
        root = self.nodes.get("mkfs_root")
        if isinstance(root, Mkfs):
            if not root.type and fs_type:
                root.type = fs_type
            if root.opts is None and mkfs_options:
                root.opts = mkfs_options
            if not root.label_given:
                if root_label:
                    root.label = root_label
                else:
                    root.label = "img-rootfs" if root.type == "xfs" else "cloudimg-rootfs"
                root.label_given = True
        return self

    # -- ids
    def assign_ids(self, seed: str) -> "BlockDeviceConfig":
        """Give every filesystem, gpt partition and disk label a fixed id from ``seed``."""
        self.seed = seed
        for fs in self.filesystems:
            if fs.uuid is None:
                derived = uuidlib.uuid5(_NS, f"{seed}\0fs\0{fs.name}")
                fs.uuid = derived.hex[:8].upper() if fs.fat else str(derived)
        for table in self.partitionings:
            if table.disk_id is None:
                derived = uuidlib.uuid5(_NS, f"{seed}\0disk\0{table.name}")
                if table.label == "gpt":
                    table.disk_id = str(derived).upper()
                else:
                    table.disk_id = "0x" + hashlib.sha256(derived.bytes).hexdigest()[:8]
            if table.label == "gpt":
                for part in table.ordered_partitions(self):
                    if part.partuuid is None:
                        part.partuuid = str(uuidlib.uuid5(_NS, f"{seed}\0part\0{part.name}"))
        return self

    # -- accessors exported to hooks
    def mount_for_point(self, point: str) -> Mount | None:
        for mount in self.mounts:
            if mount.mount_point == point:
                return mount
        return None

    def mkfs_at(self, point: str) -> Mkfs | None:
        mount = self.mount_for_point(point)
        return self.nodes[mount.base] if mount else None  # type: ignore[return-value]

    def mount_of(self, fs: Mkfs) -> Mount | None:
        for mount in self.mounts:
            if mount.base == fs.name:
                return mount
        return None

    def fstab_of(self, mount: Mount) -> Fstab | None:
        for fstab in self.fstabs:
            if fstab.base == mount.name:
                return fstab
        return None

    @property
    def root_fs(self) -> Mkfs | None:
        return self.mkfs_at("/")

    @property
    def root_label(self) -> str | None:
        return self.root_fs.label if self.root_fs else None

    @property
    def root_fs_type(self) -> str | None:
        return self.root_fs.type if self.root_fs else None

    @property
    def boot_fs(self) -> Mkfs | None:
        """The filesystem holding /boot: a /boot mount, else the root."""
        return self.mkfs_at("/boot") or self.root_fs

    @property
    def boot_label(self) -> str | None:
        return self.boot_fs.label if self.boot_fs else None

    def mount_points(self) -> list[str]:
        """Mount points in mount order (a parent before its children)."""
        return sorted(m.mount_point for m in self.mounts if m.mount_point != "none")

    def hook_environment(self) -> dict[str, str]:
        env = {}
        if self.root_label:
            env["DIB_ROOT_LABEL"] = self.root_label
        if self.root_fs_type:
            env["DIB_ROOT_FSTYPE"] = self.root_fs_type
        if self.boot_label:
            env["DIB_BOOT_LABEL"] = self.boot_label
        return env

    def partition_of(self, fs: Mkfs) -> Partition | None:
        node = self.nodes.get(fs.base or "")
        return node if isinstance(node, Partition) else None

    @property
    def esp(self) -> Partition | None:
        for part in self.partitions:
            if part.type in (ESP_GUID, "ef"):
                return part
        fs = self.mkfs_at("/boot/efi")
        return self.partition_of(fs) if fs else None

    @property
    def bios_boot(self) -> Partition | None:
        for part in self.partitions:
            if part.type == BIOS_BOOT_GUID:
                return part
        return None

    @property
    def partition_table(self) -> Partitioning | None:
        return self.partitionings[0] if self.partitionings else None


# ------------------------------------------------------------------ loading

def parse_yaml(text: str, *, source: str = "block-device config") -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BlockDeviceError(f"{source} is not valid YAML: {exc}") from None


def load_config(source: Any = None, *, root_label: str | None = None,
                fs_type: str | None = "ext4", mkfs_options: str | None = None
                ) -> BlockDeviceConfig:
    """Parse and validate a block-device config.

    ``source`` is a parsed list, YAML text, ``file://PATH`` (DIB's
    DIB_BLOCK_DEVICE_CONFIG form), a Path, or None for DIB's default config.
    The legacy params (root label, root fs type, mkfs options) are applied to
    ``mkfs_root`` before validation, as DIB does.
    """
    if source is None:
        data = parse_yaml(DEFAULT_CONFIG_YAML)
    elif isinstance(source, Path):
        data = parse_yaml(_read(source), source=str(source))
    elif isinstance(source, str):
        if source.startswith("file://"):
            path = Path(source[len("file://"):])
            data = parse_yaml(_read(path), source=str(path))
        else:
            data = parse_yaml(source)
    else:
        data = source
    entries = config_to_graph(data)
    nodes: list[Node] = []
    for key, name, base, values in entries:
        cls = _plugins.get(key)
        assert cls is not None
        nodes.extend(cls.from_config(name, base, values))
    config = BlockDeviceConfig(nodes, raw=data)
    config.apply_overrides(root_label=root_label, fs_type=fs_type, mkfs_options=mkfs_options)
    return config.validate()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise BlockDeviceError(f"cannot read block-device config {path}: {exc.strerror}") \
            from None


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
