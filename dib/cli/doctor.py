"""dib doctor: what this host can build and check, and what to install for the rest."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from dib import runner
from dib.config.hostapt import host_mirrors
from dib.runtime.userns_preflight import CHECKS as ROOTLESS_CHECKS
from dib.runtime.userns_preflight import Finding, rootless_findings

# (what it enables, tool, Debian package)
CHECKS = (
    ("builds: namespaces", "unshare", "util-linux"),
    ("builds: bootstrap", "mmdebstrap", "mmdebstrap"),
    ("builds: bootstrap (fallback)", "debootstrap", "debootstrap"),
    ("disks: partitions", "sfdisk", "fdisk"),
    ("disks: ext filesystems", "mkfs.ext4", "e2fsprogs"),
    ("disks: EFI system partition", "mkfs.fat", "dosfstools"),
    ("disks: EFI system partition", "mcopy", "mtools"),
    ("bootloader", "grub-mkimage", "grub-common"),
    ("outputs: qcow2, vhd", "qemu-img", "qemu-utils"),
    ("outputs: squashfs", "mksquashfs", "squashfs-tools"),
    ("boot checks", "qemu-system-x86_64", "qemu-system-x86"),
    ("hook unit tests: sandbox", "bwrap", "bubblewrap"),
    ("lint: shell checks", "shellcheck", "shellcheck"),
    ("remote cache: zstd layers (else gzip)", "zstd", "zstd"),
    ("remote cache tests: a local registry", "docker-registry", "docker-registry"),
)
GRUB_PLATFORMS = (("bootloader: BIOS", "/usr/lib/grub/i386-pc", "grub-pc-bin"),
                  ("bootloader: UEFI", "/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin"),
                  ("boot checks: UEFI firmware", "/usr/share/ovmf/OVMF.fd", "ovmf"))


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("doctor", help="check this host for what builds need")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=main)


def collect() -> list[dict]:
    root = os.geteuid() == 0
    rows = [{"check": "running as root", "ok": root, "optional": not root,
             "fix": "builds run in a user namespace: see the rootless rows below"}]
    for what, tool, package in CHECKS:
        rows.append({"check": f"{what} ({tool})", "ok": runner.which(tool) is not None,
                     "fix": f"apt-get install {package}"})
    for what, path, package in GRUB_PLATFORMS:
        rows.append({"check": f"{what} ({path})", "ok": os.path.exists(path),
                     "fix": f"apt-get install {package}"})
    with open("/proc/filesystems") as handle:
        filesystems = handle.read()
    rows.append({"check": "overlay filesystem in the kernel", "ok": "overlay" in filesystems,
                 "fix": "the phase cache and builds need overlayfs"})
    mirrors = host_mirrors()
    rows.append({"check": f"Debian mirror from apt sources ({mirrors.mirror or 'none'})",
                 "ok": mirrors.mirror is not None,
                 "fix": "set DIB_DISTRIBUTION_MIRROR"})
    free = shutil.disk_usage("/var/tmp").free / (1 << 30)
    rows.append({"check": f"free space in /var/tmp ({free:.1f} GiB)", "ok": free >= 4,
                 "fix": "builds need about 4 GiB; use --workdir elsewhere"})
    from dib.testing.boot import kvm_usable
    rows.append({"check": "KVM acceleration for boot checks", "ok": kvm_usable(),
                 "fix": "boot checks use TCG emulation (slower, works)", "optional": True})
    if os.geteuid() != 0:
        rows += rootless_rows(rootless_findings())
    return rows


def rootless_rows(findings: list[Finding]) -> list[dict]:
    """One row per rootless check: ok, or what is missing and how to fix it."""
    rows = []
    for check in ROOTLESS_CHECKS:
        mine = [f for f in findings if f.check == check]
        fixes = dict.fromkeys(f.fix for f in mine)     # one usermod for uids and gids
        rows.append({"check": f"rootless builds: {check}", "ok": not mine,
                     "fix": "; ".join(f.problem for f in mine) + "; fix: " + "; ".join(fixes)
                     if mine else ""})
    return rows


def main(args: argparse.Namespace) -> int:
    rows = collect()
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for row in rows:
            mark = "ok " if row["ok"] else ("-- " if row.get("optional") else "NO ")
            print(f"{mark} {row['check']}" + ("" if row["ok"] else f"  ({row['fix']})"))
    return 0 if all(r["ok"] or r.get("optional") for r in rows) else 1
