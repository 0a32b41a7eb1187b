"""The node types of DIB's block-device YAML, one class per plugin.

Each class reads its own options (``from_config``) and says what it may be
based on; the classes are found through the stevedore group
``dib.block_device`` (see ``PLUGINS``), so a third-party package can add a
plugin by registering a ``Node`` subclass there.
"""
from __future__ import annotations

import difflib
import re
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from dib.blockdev import sizes
from dib.blockdev.registry import PluginRegistry
from dib.errors import BlockDeviceError

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


def _fail(node: str, plugin: str, problem: str, fix: str) -> BlockDeviceError:
    return BlockDeviceError(f"block-device config: {plugin} '{node}': {problem}", hint=fix)


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
                close = difflib.get_close_matches(key, list(cls.options) + PLUGINS.names(), 1)
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


PLUGINS: PluginRegistry[type[Node]] = PluginRegistry(GROUP, _builtins)


def plugin_names() -> list[str]:
    return PLUGINS.names()

