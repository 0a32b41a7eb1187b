"""The node types of DIB's block-device YAML, one class per plugin.

Each class reads and checks its own options (``from_config``), recording
every mistake rather than stopping at the first; what involves other nodes
is checked in ``dib.blockdev.checks``.  The classes are found through the
stevedore group ``dib.block_device`` (see ``PLUGINS``), so a third-party
package can add a plugin by registering a ``Node`` subclass there.
"""
from __future__ import annotations

import difflib
import re
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from dib.blockdev import sizes
from dib.blockdev.registry import PluginRegistry
from dib.blockdev.problems import NodeProblems, Problems

if TYPE_CHECKING:
    from dib.blockdev.config import BlockDeviceConfig

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


_FAT_UUID_RE = re.compile(r"^[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}$")
_SIZE_HINT = ("set size: to an absolute size (e.g. 8MiB) or a percentage of the "
              "remaining space (e.g. 100%)")


@dataclass
class Entry:
    """One node as the YAML gives it, and where it stands in the document."""

    plugin: str
    name: str | None
    base: str | None
    values: dict[str, Any]
    position: int
    #: a partitioning's partitions, each without the plugins nested in it
    partitions: list["Entry"] = field(default_factory=list)
    #: keys whose values could not be read at all (reported already)
    unreadable: tuple[str, ...] = ()


@dataclass
class Node:
    """One vertex of the block-device graph."""

    plugin: ClassVar[str] = ""
    options: ClassVar[tuple[str, ...]] = ()
    name: str
    base: str | None
    position: int = field(default=0, compare=False, repr=False)

    @classmethod
    def from_config(cls, entry: Entry, problems: Problems) -> list["Node"]:
        """The node(s) this entry makes, recording each mistake in ``problems``."""
        raise NotImplementedError

    @classmethod
    def _reader(cls, entry: Entry, problems: Problems) -> NodeProblems:
        """Problems about this entry's node, after checking its option names."""
        report = problems.about(str(entry.name), cls.plugin, entry.position)
        known = list(cls.options) + PLUGINS.names()
        for key in entry.values:
            if key not in cls.options:
                close = difflib.get_close_matches(str(key), known, 1)
                report("unknown option or plugin", f"did you mean '{close[0]}'?" if close
                       else f"valid options: {', '.join(cls.options) or 'none'}", key=str(key))
        return report

    @staticmethod
    def _needs_base(entry: Entry, report: NodeProblems, what: str) -> None:
        # A base that is not text has been reported as such already.
        if not entry.base and "base" not in entry.unreadable:
            report("has no base", f"set base: to {what}", key="base")

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
    def from_config(cls, entry, problems):
        report = cls._reader(entry, problems)
        values = entry.values
        block_size = values.get("block_size", 512)
        if block_size not in (512, 4096):
            report(f"block_size {block_size!r} is not supported", "use 512 or 4096",
                   key="block_size")
            block_size = 512
        size = values.get("size")
        if size is not None:
            report.size("size", size)
        return [cls(name=str(entry.name), base=None, position=entry.position, size=size,
                    directory=values.get("directory"), block_size=int(block_size))]


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

    @classmethod
    def from_table(cls, entry: Entry, table: "Partitioning", problems: Problems) -> "Partition":
        """The partition ``entry`` of ``table``."""
        report = cls._reader(entry, problems)
        values = entry.values
        size = values.get("size", "")
        if "size" not in values:
            report("has no size", _SIZE_HINT, key="size")
        else:
            report.size("size", size, available=100 if sizes.is_relative(size) else None)
        flags = values.get("flags") or []
        flags = [flags] if isinstance(flags, str) else flags
        if not isinstance(flags, list):
            report(f"flags {flags!r} is not a list", "write e.g. flags: [boot, primary]",
                   key="flags")
            flags = []
        for flag in flags:
            if flag not in ("boot", "primary"):
                report(f"unknown flag {flag!r}", "valid flags are boot and primary",
                       key="flags")
        if table.label == "gpt" and "primary" in flags:
            report("the primary flag only applies to mbr tables",
                   "remove 'primary' from flags: (every gpt partition is primary)", key="flags")
        part = cls(name=entry.name, base=table.name, position=entry.position, size=size,
                   flags=tuple(flags), table=table.name, gpt_name=values.get("label", entry.name))
        part.type = _partition_type(table.label, values.get("type"), report)
        part.partuuid = _partuuid(table.label, values.get("uuid"), report)
        return part


def _partition_type(label: str, value: Any, report: NodeProblems) -> str:
    if label == "gpt":
        return _gpt_type(value, report)
    if label == "mbr":
        return _mbr_type(value, report)
    return ""    # the table's own label is wrong: nothing to check the type against


def _partuuid(label: str, value: Any, report: NodeProblems) -> str | None:
    if value is None:
        return None
    if label != "gpt" or not _GUID_RE.match(str(value)):
        report(f"uuid {value!r} is not usable",
               "give a GUID (gpt only), or leave it out for a fixed derived one", key="uuid")
        return None
    return str(value).lower()


def _gpt_type(value: Any, report: NodeProblems) -> str:
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
    report(f"gpt type {value!r} is not known",
           f"use a type GUID or one of {', '.join(sorted(GPT_TYPES))}", key="type")
    return GPT_TYPES["8300"]


def _mbr_type(value: Any, report: NodeProblems) -> str:
    if value is None:
        return "83"
    try:
        number = value if isinstance(value, int) and not isinstance(value, bool) \
            else int(str(value), 16)
    except ValueError:
        number = -1
    if not 0 < number <= 0xFF or number in (0x05, 0x0F, 0x85):
        report(f"mbr type {value!r} is not usable",
               "give a hex byte such as 0x83 (Linux), 0x82 (swap), 0xef (ESP), 0x8e (LVM); "
               "extended partitions are made automatically", key="type")
        return "83"
    return f"{number:02x}"


@dataclass
class Partitioning(Node):
    plugin: ClassVar[str] = "partitioning"
    options: ClassVar[tuple[str, ...]] = ("label", "align", "partitions")
    label: str = "mbr"
    align: int = sizes.MiB
    partitions: list[str] = field(default_factory=list)
    disk_id: str | None = None

    @classmethod
    def from_config(cls, entry, problems):
        report = cls._reader(entry, problems)
        cls._needs_base(entry, report, "a local_loop name, e.g. image0, or nest it under "
                                       "the local_loop")
        values = entry.values
        label = values.get("label")
        if label not in ("mbr", "gpt"):
            report(f"label {label!r} is not a partition table type",
                   "set label: mbr or label: gpt", key="label")
            label = ""
        table = cls(name=str(entry.name), base=entry.base, position=entry.position,
                    label=label, align=cls._align(label, values, report))
        if "partitions" in values:
            report("partitions: is not a list", "give a list of {name, size} maps",
                   key="partitions")
        elif not entry.partitions:
            report("has no partitions",
                   "add a partitions: list with at least one {name, size} entry",
                   key="partitions")
        parts = [Partition.from_table(p, table, problems) for p in entry.partitions]
        table.partitions = [p.name for p in parts]
        table._number(parts, report)
        return [table, *parts]

    @staticmethod
    def _align(label: str, values: dict[str, Any], report: NodeProblems) -> int:
        if "align" not in values:
            return sizes.MiB
        if label == "gpt":
            report("align is only supported for mbr",
                   "remove align: (gpt partitions are aligned to 1MiB)", key="align")
            return sizes.MiB
        align = report.size("align", values["align"])
        if align is not None and (align < 512 or align % 512):
            report(f"align {values['align']!r} is not a multiple of 512 bytes",
                   "use e.g. 1MiB", key="align")
            align = None
        return sizes.MiB if align is None else align

    def _number(self, parts: list[Partition], report: NodeProblems) -> None:
        """Partition numbers: mbr primaries 1-4 then logicals from 5; gpt in order."""
        if self.label == "mbr":
            primaries = [p for p in parts if p.primary]
            logicals = [p for p in parts if not p.primary]
            if len(primaries) + (1 if logicals else 0) > 4:
                report("an MBR holds at most 4 primary partitions (3 when there are "
                       "logical ones)", "remove the primary flag from some partitions",
                       key="partitions")
            late = [p.name for p in parts[parts.index(logicals[0]):] if p.primary] \
                if logicals else []
            if late:
                report(f"primary partition '{late[0]}' comes after a logical one",
                       "list the primary partitions first", key="partitions")
            parts = primaries + logicals
            numbers = [*range(1, len(primaries) + 1), *range(5, 5 + len(logicals))]
        else:
            if len(parts) > 128:
                report("more than 128 GPT partitions", "use fewer", key="partitions")
            numbers = list(range(1, len(parts) + 1))
        for part, number in zip(parts, numbers):
            part.number = number

    def ordered_partitions(self, config: "BlockDeviceConfig") -> list[Partition]:
        """Partitions in on-disk order (mbr: primaries first, then logicals)."""
        parts = [config.nodes[n] for n in self.partitions]
        return sorted(parts, key=lambda p: p.number)  # type: ignore[arg-type, return-value]


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
    def from_config(cls, entry, problems):
        report = cls._reader(entry, problems)
        cls._needs_base(entry, report, "a partition, local_loop or logical volume name")
        values = entry.values
        opts, uuid = values.get("opts"), values.get("uuid")
        return [cls(name=str(entry.name), base=entry.base, position=entry.position,
                    type=values.get("type"), label=values.get("label"),
                    opts=None if opts is None else str(opts),
                    uuid=None if uuid is None else str(uuid), label_given="label" in values)]

    @property
    def fat(self) -> bool:
        return self.type in ("vfat", "fat")

    def finish(self, problems: Problems) -> None:
        """Check type, label and uuid once DIB's overrides of mkfs_root are in."""
        report = problems.about(self.name, self.plugin, self.position)
        known = self._check_type(report)
        if self.label is None:
            self.label = self.name
        self.label = str(self.label).upper() if self.fat else str(self.label)
        pattern = _FAT_LABEL_RE if self.fat else _LABEL_RE
        if not pattern.match(self.label):
            allowed = "A-Z 0-9 _ -" if self.fat else "letters, digits and . _ @ : + -"
            report(f"label {self.label!r} has characters that cannot be used here",
                   f"use only {allowed}", key="label")
        limit = LABEL_MAX[str(self.type)] if known else len(self.label)
        if len(self.label) > limit:
            report(f"label {self.label!r} is {len(self.label)} characters, more than "
                   f"{self.type} allows ({limit})", f"shorten it to {limit} characters or fewer",
                   key="label")
        if self.uuid is not None:
            self._check_uuid(report)

    def _check_type(self, report: NodeProblems) -> bool:
        if not self.type:
            report("has no type", f"set type: to one of {', '.join(FS_TYPES)}", key="type")
            return False
        if self.type not in FS_TYPES:
            close = difflib.get_close_matches(str(self.type), FS_TYPES, 1)
            report(f"unknown filesystem type {self.type!r}",
                   f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(FS_TYPES)}",
                   key="type")
            return False
        return True

    def _check_uuid(self, report: NodeProblems) -> None:
        uuid = str(self.uuid)
        if self.fat:
            if not _FAT_UUID_RE.match(uuid):
                report(f"uuid {uuid!r} is not a FAT volume id", "use 8 hex digits, e.g. 1234-ABCD",
                       key="uuid")
            return
        try:
            self.uuid = str(uuidlib.UUID(uuid))
        except ValueError:
            report(f"uuid {uuid!r} is not a UUID",
                   "give a UUID or leave it out for a fixed derived one", key="uuid")

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
    mount_point: str = ""     # "" when the YAML's is unusable (already reported)

    @classmethod
    def from_config(cls, entry, problems):
        report = cls._reader(entry, problems)
        cls._needs_base(entry, report, "a mkfs name")
        given = entry.values.get("mount_point")
        return [cls(name=str(entry.name), base=entry.base, position=entry.position,
                    mount_point=_mount_point(given, report))]


def _mount_point(given: Any, report: NodeProblems) -> str:
    if not isinstance(given, str) or not (given == "none" or given.startswith("/")):
        report(f"mount_point {given!r} is not an absolute path",
               "set mount_point: to a path such as / or /boot/efi (or none for swap)",
               key="mount_point")
        return ""
    if given in ("/", "none"):
        return given
    point = "/" + given.strip("/")
    if any(part in ("", ".", "..") for part in point.split("/")[1:]):
        report(f"mount_point {given!r} is not a clean path", "write it like /var/lib",
               key="mount_point")
        return ""
    return point


@dataclass
class Fstab(Node):
    plugin: ClassVar[str] = "fstab"
    options: ClassVar[tuple[str, ...]] = ("options", "dump-freq", "fsck-passno")
    fs_options: str = "defaults"
    dump_freq: int = 0
    fsck_passno: int = 2

    @classmethod
    def from_config(cls, entry, problems):
        report = cls._reader(entry, problems)
        cls._needs_base(entry, report, "a mount name")
        values = entry.values
        opts = str(values.get("options", "defaults"))
        if not opts or any(c.isspace() for c in opts):
            report(f"options {opts!r} are not valid",
                   "give a comma-separated list without spaces, e.g. defaults,noatime",
                   key="options")
        return [cls(name=str(entry.name), base=entry.base, position=entry.position,
                    fs_options=opts, dump_freq=_whole(values, "dump-freq", 0, report),
                    fsck_passno=_whole(values, "fsck-passno", 2, report))]


def _whole(values: dict[str, Any], key: str, default: int, report: NodeProblems) -> int:
    try:
        return int(values.get(key, default))
    except (TypeError, ValueError):
        report(f"{values[key]!r} is not a whole number", f"use e.g. {key}: {default}", key=key)
        return default


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
    def from_config(cls, entry, problems):
        report = cls._reader(entry, problems)
        lists = {k: entry.values.get(k) or [] for k in ("pvs", "vgs", "lvs")}
        for key, items in lists.items():
            if not isinstance(items, list) or not items:
                report(f"{key}: is not a non-empty list",
                       "see DIB's lvm plugin documentation for the layout", key=key)
                lists[key] = []
        pvs = _named(lists["pvs"], "pv", "the partition holding the physical volume", report)
        vgs = _named(lists["vgs"], "vg", "the pv names of the volume group", report)
        lvs = _named(lists["lvs"], "lv", "the volume group name", report)
        pv_names = {pv["name"] for pv in pvs}
        vg_names = {vg["name"] for vg in vgs}
        for vg in vgs:
            for pv in vg["base"] if isinstance(vg["base"], list) else [vg["base"]]:
                if pv not in pv_names:
                    report(f"vg '{vg['name']}' uses unknown pv '{pv}'",
                           f"known pvs: {', '.join(sorted(pv_names))}", key="vgs")
        node = cls(name=str(entry.name), base=None, position=entry.position, pvs=pvs, vgs=vgs,
                   lvs=lvs, pv_bases=[pv["base"] for pv in pvs])
        out: list[Node] = [node]
        for lv in lvs:
            if lv["base"] not in vg_names:
                report(f"lv '{lv['name']}' uses unknown vg '{lv['base']}'",
                       f"known vgs: {', '.join(sorted(vg_names))}", key="lvs")
            if "size" not in lv and "extents" not in lv and lv.get("type") != "thin-pool":
                report(f"lv '{lv['name']}' has no size",
                       "set size: (e.g. 2GiB) or extents: (e.g. 100%FREE)", key="lvs")
            out.append(LogicalVolume(name=lv["name"], base=node.name, position=entry.position,
                                     vg=lv["base"], size=lv.get("size")))
        return out

    def edges(self) -> list[str]:
        return list(self.pv_bases)


def _named(items: list[Any], kind: str, base: str, report: NodeProblems) -> list[dict]:
    """The items with a name and a base (a vg's may list several); each
    other one is reported."""
    good = []
    for item in items:
        bases = item.get("base") if isinstance(item, dict) else None
        if kind == "vg" and isinstance(bases, list):
            bases = bases[0] if bases and all(isinstance(b, str) for b in bases) else None
        if isinstance(item, dict) and isinstance(item.get("name"), str) and \
                isinstance(bases, str):
            good.append(item)
        else:
            report(f"{kind} {item!r} needs name: and base:", f"base: is {base}", key=f"{kind}s")
    return good


def _builtins() -> dict[str, type[Node]]:
    return {cls.plugin: cls for cls in (LocalLoop, Partitioning, Mkfs, Mount, Fstab, Lvm)}


PLUGINS: PluginRegistry[type[Node]] = PluginRegistry(GROUP, _builtins)


def plugin_names() -> list[str]:
    return PLUGINS.names()
