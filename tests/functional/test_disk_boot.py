"""Real disks, real boots: MBR, GPT+ESP (hybrid) and a separate /var, BIOS and UEFI.

Needs root, mmdebstrap (first run only; the tree is cached under
/var/tmp/dib-test-cache/), the disk tools, grub-pc-bin, grub-efi-amd64-bin,
ovmf and qemu-system-x86.  Each boot is bounded by 90 s.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from dib import bootloader, runner
from dib.blockdev import (build_disk, fstab_text, load_config, plan_disk, tree_size,
                          unsized_plan, write_fstab)
from dib.outputs import OutputContext
from dib.outputs.images import Qcow2
from dib.testing.boot import boot_check

pytestmark = pytest.mark.functional

CACHE = Path("/var/tmp/dib-test-cache")
TREE_TAR = CACHE / "bookworm-minbase-cloud-kernel-v1.tar"
PACKAGES = "linux-image-cloud-amd64,initramfs-tools,systemd-sysv,udev,zstd"
BOOT_TIMEOUT = 90.0
TOOLS = [("sfdisk", "fdisk"), ("mkfs.ext4", "e2fsprogs"), ("mkfs.fat", "dosfstools"),
         ("mcopy", "mtools"), ("grub-mkimage", "grub-common"), ("qemu-img", "qemu-utils"),
         ("qemu-system-x86_64", "qemu-system-x86"), ("unshare", "util-linux"),
         ("debugfs", "e2fsprogs")]

#: a BIOS-only MBR disk: root alone (the shipped block-device-mbr adds an ESP)
MBR = """
- local_loop: {name: image0}
- partitioning:
    base: image0
    label: mbr
    partitions:
      - name: root
        flags: [boot, primary]
        size: 100%
        mkfs:
          mount:
            mount_point: /
            fstab: {options: defaults, fsck-passno: 1}
"""
#: the shipped hybrid layout, as a user gets it
EFI = (Path(__file__).resolve().parents[2] / "elements" / "block-device-efi" /
       "block-device-default.yaml").read_text()
VAR = """
- local_loop: {name: image0}
- partitioning:
    base: image0
    label: gpt
    partitions:
      - name: ESP
        type: 'EF00'
        size: 64MiB
        mkfs: {type: vfat, mount: {mount_point: /boot/efi, fstab: {}}}
      - {name: BSP, type: 'EF02', size: 1MiB}
      - name: root
        size: 60%
        mkfs: {mount: {mount_point: /, fstab: {fsck-passno: 1}}}
      - name: var
        size: 100%
        mkfs: {name: mkfs_var, type: ext4, label: var, mount: {mount_point: /var, fstab: {}}}
"""


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (mkfs -d of a root-owned tree, private mount namespace)"
    missing = [f"{t} ({p})" for t, p in TOOLS if runner.which(t) is None]
    if missing:
        return "missing host tools: " + ", ".join(missing)
    for d, pkg in (("i386-pc", "grub-pc-bin"), ("x86_64-efi", "grub-efi-amd64-bin")):
        if not Path("/usr/lib/grub", d).is_dir():
            return f"missing /usr/lib/grub/{d} (Debian package {pkg})"
    if not TREE_TAR.exists() and runner.which("mmdebstrap") is None:
        return "no cached tree and no mmdebstrap to build one"
    return None


def host_mirror() -> str:
    if os.environ.get("DIB_DISTRIBUTION_MIRROR"):
        return os.environ["DIB_DISTRIBUTION_MIRROR"]
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        stanzas = Path(path).read_text().split("\n\n")
        for stanza in stanzas:
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and \
                    not any(s.endswith("-security") for s in fields.get("Suites", "").split()):
                return fields["URIs"].split()[0]
    if Path("/etc/apt/sources.list").exists():
        for line in Path("/etc/apt/sources.list").read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["deb"] and len(parts) >= 3 and "security" not in parts[2]:
                uri = [p for p in parts[1:] if not p.startswith("[")][0]
                return uri
    pytest.skip("no apt mirror configured on the host")


def _build_tree_tar() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = TREE_TAR.with_suffix(".tmp.tar")
    runner.run([
        "mmdebstrap", "--variant=minbase", f"--include={PACKAGES}",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        "--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata",
        "--essential-hook=chroot \"$1\" dpkg-divert --local --rename --add "
        "/usr/sbin/update-initramfs && ln -s /bin/true \"$1\"/usr/sbin/update-initramfs",
        "--customize-hook=rm \"$1\"/usr/sbin/update-initramfs && chroot \"$1\" dpkg-divert "
        "--local --rename --remove /usr/sbin/update-initramfs && chroot \"$1\" "
        "update-initramfs -c -k all",
        "bookworm", str(tmp), host_mirror()], timeout=900, what="mmdebstrap (test tree)")
    os.replace(tmp, TREE_TAR)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    if not TREE_TAR.exists():
        _build_tree_tar()
    root = tmp_path_factory.mktemp("disk-boot") / "tree"
    root.mkdir()
    runner.run(["tar", "-C", str(root), "--xattrs", "--xattrs-include=*", "--numeric-owner",
                "-xf", str(TREE_TAR)], what="restore the cached test tree")
    shadow = root / "etc/shadow"
    shadow.write_text(re.sub(r"^root:[^:]*:", "root::", shadow.read_text(), flags=re.M))
    (root / "etc/hostname").write_text("dibtest\n")
    (root / "etc/machine-id").write_text("")
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    yield root
    shutil.rmtree(root.parent, ignore_errors=True)


def _host_state() -> tuple[str, str]:
    mounts = Path("/proc/self/mountinfo").read_text()
    loops = runner.run(["losetup", "-a"], check=False).stdout if runner.which("losetup") else ""
    return mounts, loops


def _build(tree: Path, layout: str, name: str, image_size: int | None = None):
    cfg = load_config(layout).assign_ids(f"functional-{name}")
    timings = {}
    t0 = time.monotonic()
    write_fstab(cfg, tree)
    bootloader.prepare_tree(tree, unsized_plan(cfg), None,
                            options=bootloader.BootOptions(timeout=0))
    plan = plan_disk(cfg, tree_bytes=tree_size(tree), image_size=image_size)
    raw = tree.parent / f"{name}.raw"
    build_disk(plan, tree, raw)
    installed = bootloader.install(raw, plan)
    timings["disk"] = time.monotonic() - t0
    t1 = time.monotonic()
    (qcow2,) = Qcow2().produce(OutputContext(image_name=tree.parent / name, raw=raw))
    timings["qcow2"] = time.monotonic() - t1
    return cfg, plan, raw, qcow2, installed, timings


def _debugfs_cat(raw: Path, offset: int, path: str) -> str:
    return runner.run(["debugfs", "-R", f"cat {path}", f"{raw}?offset={offset}"]).stdout


def _debugfs_ls(raw: Path, offset: int, path: str) -> list[str]:
    out = runner.run(["debugfs", "-R", f"ls -p {path}", f"{raw}?offset={offset}"]).stdout
    return [line.split("/")[5] for line in out.splitlines() if line.count("/") >= 6]


def _boot(qcow2: Path, firmware: str, timings: dict):
    report = boot_check(qcow2, firmware=firmware, timeout=BOOT_TIMEOUT, expect=None,
                        log_path=qcow2.with_suffix(f".{firmware}.log"))
    timings[f"boot {firmware}"] = report.seconds
    assert report.reached, f"{firmware} boot did not reach login: ({report.exit_reason})\n" \
                           f"{report.tail[-1500:]}"
    assert "Linux version" in report.milestones
    return report


def test_mbr_boots_bios(tree):
    before = _host_state()
    cfg, plan, raw, qcow2, installed, timings = _build(tree, MBR, "mbr")
    assert installed.bios and not installed.uefi
    assert _debugfs_cat(raw, plan.root_fs.offset, "/etc/fstab") == \
        "LABEL=cloudimg-rootfs / ext4 defaults 0 1\n"
    _boot(qcow2, "bios", timings)
    assert _host_state() == before
    print("mbr timings", {k: round(v, 2) for k, v in timings.items()})


def test_gpt_efi_hybrid_boots_bios_and_uefi(tree):
    before = _host_state()
    cfg, plan, raw, qcow2, installed, timings = _build(tree, EFI, "efi")
    assert installed.bios and installed.uefi
    assert _debugfs_cat(raw, plan.root_fs.offset, "/etc/fstab") == fstab_text(cfg)
    assert "LABEL=MKFS_ESP /boot/efi vfat defaults 0 2" in fstab_text(cfg)
    _boot(qcow2, "bios", timings)
    _boot(qcow2, "uefi", timings)
    assert _host_state() == before
    print("efi timings", {k: round(v, 2) for k, v in timings.items()})


def test_separate_var_partition(tree):
    before = _host_state()
    cfg, plan, raw, qcow2, installed, timings = _build(tree, VAR, "var",
                                                       image_size=2 * 1024 ** 3)
    assert _debugfs_ls(raw, plan.root_fs.offset, "/var") == [".", ".."]
    assert "lib" in _debugfs_ls(raw, plan.fs_at("/var").offset, "/")
    assert "LABEL=var /var ext4 defaults 0 2" in fstab_text(cfg)
    _boot(qcow2, "bios", timings)
    _boot(qcow2, "uefi", timings)
    assert _host_state() == before
    print("var timings", {k: round(v, 2) for k, v in timings.items()})
