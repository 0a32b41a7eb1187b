"""disk-image-create ... vm: bootable disk images through the whole pipeline."""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from functional_support import mountinfo, needs_build_host, read_tar_member
from dib.testing.boot import boot_check

pytestmark = [pytest.mark.functional, needs_build_host]

VAR_LAYOUT = """
- local_loop: {name: image0}
- partitioning:
    base: image0
    label: gpt
    partitions:
      - name: ESP
        type: 'EF00'
        size: 300MiB
        mkfs: {type: vfat, mount: {mount_point: /boot/efi, fstab: {options: defaults}}}
      - name: BSP
        type: 'EF02'
        size: 8MiB
      - name: root
        type: '8300'
        size: 1600MiB
        mkfs:
          type: ext4
          mount: {mount_point: /, fstab: {options: defaults, fsck-passno: 1}}
      - name: var
        type: '8300'
        size: 100%
        mkfs:
          type: ext4
          label: varfs
          mount: {mount_point: /var, fstab: {options: "defaults,nodev", fsck-passno: 2}}
"""


def boot_tools_missing() -> str | None:
    for tool in ("qemu-system-x86_64", "qemu-img", "grub-mkimage", "sfdisk", "mcopy"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (tools/install-host-deps)"
    return None


needs_boot_tools = pytest.mark.skipif(boot_tools_missing() is not None,
                                      reason=boot_tools_missing() or "")


def partitions(image) -> dict:
    out = subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)["partitiontable"]


@needs_boot_tools
def test_default_vm_image_boots_with_bios_and_uefi(builds, tmp_path):
    before = mountinfo()
    result = builds.run("-t", "qcow2,raw", "debian-minimal", "vm", name="vm")
    assert result.returncode == 0, result.output[-3000:]
    table = partitions(result.image.with_suffix(".raw"))
    assert table["label"] == "dos"
    assert [p["type"] for p in table["partitions"]] == ["ef", "83"]
    qcow2 = result.image.with_suffix(".qcow2")
    for firmware in ("bios", "uefi"):
        report = boot_check(qcow2, firmware=firmware, timeout=240,
                            log_path=tmp_path / f"{firmware}.log")
        assert report.reached, (firmware, (tmp_path / f"{firmware}.log").read_text(errors="replace")[-2000:])
    assert builds.leaked_mounts(before) == []
    assert builds.workspaces() == []


@needs_boot_tools
def test_separate_var_partition_has_right_fstab_and_boots(builds, tmp_path):
    result = builds.run("-t", "qcow2,tar", "debian-minimal", "vm", "block-device-efi",
                        name="var", env={"DIB_BLOCK_DEVICE_CONFIG": VAR_LAYOUT})
    assert result.returncode == 0, result.output[-3000:]

    fstab = read_tar_member(result.image.with_suffix(".tar"), "./etc/fstab").decode()
    lines = [line.split() for line in fstab.splitlines() if line and not line.startswith("#")]
    by_point = {fields[1]: fields for fields in lines}
    assert by_point["/"][0] == "LABEL=cloudimg-rootfs"
    assert by_point["/var"][:4] == ["LABEL=varfs", "/var", "ext4", "defaults,nodev"]
    assert by_point["/boot/efi"][2] == "vfat"
    report = boot_check(result.image.with_suffix(".qcow2"), firmware="uefi", timeout=240,
                        expect="login:", log_path=tmp_path / "boot.log")
    assert report.reached, (tmp_path / "boot.log").read_text(errors="replace")[-2000:]
    log = (tmp_path / "boot.log").read_text(errors="replace")
    assert "Failed to mount /var" not in log


def test_block_device_config_errors_come_before_any_work(builds):
    bad = "- local_loop: {name: image0}\n  mkfs: {name: x}\n"
    started = time.monotonic()
    result = builds.run("debian-minimal", "vm", name="bad",
                        env={"DIB_BLOCK_DEVICE_CONFIG": bad})
    assert result.returncode != 0
    assert "block-device config" in result.output
    assert "Traceback" not in result.output
    assert time.monotonic() - started < 20
    assert builds.workspaces() == []
