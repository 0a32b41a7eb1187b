"""A partition image, as Ironic deploys one: ``debian-minimal baremetal``
without ``vm`` is one file system with no partition table and no boot loader,
and boots with the kernel and initrd the baremetal element writes beside it,
the root file system named by UUID on the kernel command line.

One build (warm from the phase cache) and one boot under TCG (~80 s).
Needs root, the build tools, qemu-system-x86 and qemu-img.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dib import runner
from functional_support import ROOT, needs_build_host

pytestmark = [pytest.mark.functional, needs_build_host]

TOOLS = ("qemu-system-x86_64", "qemu-img", "blkid")
ROOT_LABEL = "cloudimg-rootfs"


def _missing_tool() -> str | None:
    missing = [tool for tool in TOOLS if runner.which(tool) is None]
    return f"missing host tools: {', '.join(missing)} (tools/install-host-deps)" \
        if missing else None


def _probe(raw: Path) -> dict[str, str]:
    """What blkid finds at the start of the image: a file system, not a table."""
    out = subprocess.run(["blkid", "-p", "-o", "export", str(raw)], check=True,
                         capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _dib_boot(*args: str, log: Path) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, "-m", "dib.cli.main", "boot", "--json",
                           "--log", str(log), *args],
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        return proc, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"no JSON report:\n{proc.stdout}\n{proc.stderr}") from None


@pytest.mark.skipif(_missing_tool() is not None, reason=_missing_tool() or "")
def test_partition_image_boots_with_the_extracted_kernel_and_initrd(builds):
    result = builds.run("-t", "qcow2,raw", "debian-minimal", "baremetal", name="overcloud")
    assert result.returncode == 0, result.output[-3000:]
    qcow2, raw = result.image.with_suffix(".qcow2"), result.image.with_suffix(".raw")
    kernel, initrd = result.image.with_suffix(".vmlinuz"), result.image.with_suffix(".initrd")
    assert kernel.stat().st_size > 1024 ** 2 and initrd.stat().st_size > 1024 ** 2

    # The whole image is the root file system; Ironic reads its UUID after
    # writing it to a partition and puts root=UUID=... on the command line.
    probe = _probe(raw)
    assert probe.get("USAGE") == "filesystem" and probe.get("TYPE") == "ext4", probe
    assert probe.get("LABEL") == ROOT_LABEL, probe
    uuid = probe["UUID"]
    raw.unlink()

    log = builds.scratch / "console.log"
    proc, report = _dib_boot(
        str(qcow2), "--kernel", str(kernel), "--initrd", str(initrd),
        "--append", f"root=UUID={uuid} ro", "--timeout", "400",
        "--exec", "findmnt -n -o SOURCE,FSTYPE /",
        "--exec", "lsblk -n -o NAME /dev/vda",
        "--exec", "findmnt -n -o OPTIONS / | cut -d, -f1",
        "--exec", "cat /proc/cmdline",
        log=log)
    console = log.read_text(errors="replace")[-3000:] if log.exists() else "(no console log)"
    assert proc.returncode == 0, proc.stderr + console
    assert report["reached"] and report["login"] == "serial", console
    assert "GRUB" not in report["milestones"], "no boot loader: the kernel came from outside"
    outputs = [entry["output"].split() for entry in report["exec"]]
    # Root is the whole disk: no partition table, so no vda1.
    assert outputs[0] == ["/dev/vda", "ext4"]
    assert outputs[1] == ["vda"]
    # The image's fstab (by label) matched, so systemd remounted it read-write.
    assert outputs[2] == ["rw"]
    assert f"root=UUID={uuid}" in outputs[3]
