"""/etc/fstab text the way DIB writes it from a block-device config."""
from __future__ import annotations

from pathlib import Path

from dib.blockdev.config import BlockDeviceConfig
from dib.blockdev.nodes import Mkfs


def _fs_type(fs: Mkfs) -> str:
    return "vfat" if fs.fat else str(fs.type)


def fstab_text(config: BlockDeviceConfig, *, by: str = "label") -> str:
    """One line per mount that has an fstab node, in mount order.

    ``by="label"`` writes ``LABEL=`` like DIB; ``by="uuid"`` writes ``UUID=``
    (call ``assign_ids`` first).  Swap (mount_point none) gets ``sw 0 0``.
    """
    lines = []
    mounts = sorted(config.mounts, key=lambda m: (m.mount_point == "none", m.mount_point))
    for mount in mounts:
        fstab = config.fstab_of(mount)
        if fstab is None:
            continue
        fs: Mkfs = config.nodes[mount.base]  # type: ignore[assignment]
        if by == "uuid" and fs.fs_uuid:
            ident = f"UUID={fs.fs_uuid}"
        else:
            ident = f"LABEL={fs.label}"
        if fs.type == "swap":
            lines.append(f"{ident} none swap sw 0 0")
        else:
            lines.append(f"{ident} {mount.mount_point} {_fs_type(fs)} {fstab.fs_options} "
                         f"{fstab.dump_freq} {fstab.fsck_passno}")
    return "".join(line + "\n" for line in lines)


def write_fstab(config: BlockDeviceConfig, tree: Path, *, by: str = "label") -> Path:
    """Write TREE/etc/fstab (before the filesystems are made)."""
    path = Path(tree) / "etc" / "fstab"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fstab_text(config, by=by))
    return path
