"""The checked block-device graph: nodes by name, typed views, DIB's legacy
overrides of ``mkfs_root`` and fixed ids.  Which filesystem is the root,
which holds /boot and which partition is the ESP is the layout's to say
(``dib.blockdev.layout.DiskPlan``).

``dib.blockdev.graph.load_config`` makes one from YAML.
"""
from __future__ import annotations

import graphlib
import hashlib
import uuid as uuidlib
from typing import Any

from dib.blockdev.nodes import (Fstab, LocalLoop, Lvm, Mkfs, Mount, Node, Partition,
                                Partitioning)

_NS = uuidlib.UUID("5d1b0c6e-4f0a-4bd2-9c36-7a3e2f1b6a90")


class BlockDeviceConfig:
    """The validated graph. Nodes are kept in file order in ``nodes``."""

    def __init__(self, nodes: list[Node], raw: Any = None) -> None:
        self.raw = raw
        self.nodes: dict[str, Node] = {node.name: node for node in nodes}
        if len(self.nodes) != len(nodes):
            raise ValueError("node names must be unique (graph.build_nodes sees to it)")
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

    # -- lookups
    def mount_of(self, fs: Mkfs) -> Mount | None:
        return next((m for m in self.mounts if m.base == fs.name), None)

    def fstab_of(self, mount: Mount) -> Fstab | None:
        return next((f for f in self.fstabs if f.base == mount.name), None)

    def mount_points(self) -> list[str]:
        """Mount points in mount order (a parent before its children)."""
        return sorted(m.mount_point for m in self.mounts if m.mount_point != "none")

    @property
    def partition_table(self) -> Partitioning | None:
        return self.partitionings[0] if self.partitionings else None
