"""Put GRUB's BIOS boot code into an image file without a loop device.

What grub-bios-setup does for an embedded core image, done on a file:

* boot.img (one sector) is GRUB's MBR code.  Its first 440 bytes replace the
  disk's MBR code; the disk signature, partition table and 0x55AA stay.
  Two fields in it are set: the 64-bit LBA of core.img's first sector at
  0x5c ("kernel sector"), and the two-byte short jump at 0x66 is replaced by
  two NOPs so the code also copes with BIOSes that pass a wrong drive number
  for a hard disk.
* core.img starts with diskboot.img, one sector whose tail holds a
  blocklist: the 64-bit start LBA at 0x1f4, then a 16-bit sector count and
  a segment.  grub-mkimage already fills in the count; the start must become
  the LBA of the sector after diskboot, i.e. core LBA + 1.
* core.img is written at its LBA: sector 1 (the MBR gap) on an msdos disk,
  or the start of the bios-boot (EF02) partition on a GPT disk.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

from dib.errors import BlockDeviceError

SECTOR = 512
MBR_CODE_SIZE = 440
KERNEL_SECTOR = 0x5C
DRIVE_CHECK = 0x66
BLOCKLIST_START = 0x1F4
BLOCKLIST_LEN = 0x1FC
SIGNATURE = b"\x55\xaa"


def patch_boot_sector(mbr: bytes, boot_img: bytes, core_lba: int) -> bytes:
    """The disk's sector 0 with GRUB's boot code pointing at ``core_lba``."""
    if len(boot_img) != SECTOR or boot_img[510:512] != SIGNATURE:
        raise BlockDeviceError("boot.img is not a 512-byte boot sector",
                               hint="reinstall grub-pc-bin")
    if len(mbr) != SECTOR or mbr[510:512] != SIGNATURE:
        raise BlockDeviceError("the image has no MBR (partition table) to install into",
                               hint="write the partition table before the bootloader")
    out = bytearray(mbr)
    out[:MBR_CODE_SIZE] = boot_img[:MBR_CODE_SIZE]
    struct.pack_into("<Q", out, KERNEL_SECTOR, core_lba)
    out[DRIVE_CHECK:DRIVE_CHECK + 2] = b"\x90\x90"
    return bytes(out)


def patch_core_image(core_img: bytes, core_lba: int) -> bytes:
    """core.img with diskboot's blocklist starting right after its first sector."""
    if len(core_img) < 2 * SECTOR:
        raise BlockDeviceError("core.img is too small to be a GRUB i386-pc core image")
    count = struct.unpack_from("<H", core_img, BLOCKLIST_LEN)[0]
    needed = -(-len(core_img) // SECTOR) - 1
    if count == 0 or count > needed:
        raise BlockDeviceError(
            f"core.img's blocklist says {count} sectors but the image has {needed} after "
            "diskboot", hint="build core.img with grub-mkimage -O i386-pc")
    out = bytearray(core_img)
    struct.pack_into("<Q", out, BLOCKLIST_START, core_lba + 1)
    pad = (-len(out)) % SECTOR
    return bytes(out) + b"\0" * pad


def embed(raw: Path, boot_img: bytes, core_img: bytes, core_lba: int, capacity: int) -> None:
    """Write patched core.img at ``core_lba`` and boot code into sector 0."""
    core = patch_core_image(core_img, core_lba)
    if len(core) > capacity:
        raise BlockDeviceError(
            f"GRUB core image ({len(core)} bytes) does not fit the {capacity} bytes "
            "available for it", hint="start the first partition at 1MiB, or give the "
                                     "bios-boot (EF02) partition at least 1MiB")
    fd = os.open(raw, os.O_RDWR)
    try:
        mbr = os.pread(fd, SECTOR, 0)
        sector0 = patch_boot_sector(mbr, boot_img, core_lba)
        os.pwrite(fd, core, core_lba * SECTOR)
        os.pwrite(fd, sector0, 0)
    finally:
        os.close(fd)
