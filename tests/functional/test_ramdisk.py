"""Ramdisk and baremetal builds for real: ramdisk-image-create's kernel and
initramfs boot to the ramdisk's shell, and a baremetal image has its kernel
and initrd beside it.

Needs root, mmdebstrap (first run only; later runs reuse the phase cache)
and qemu-system-x86 for the boot. Two builds in all.
"""
from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from functional_support import mountinfo, needs_build_host

pytestmark = pytest.mark.functional

PROMPT = b"dib-ramdisk:/# "
BOOT_TIMEOUT = 180.0
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 is not installed (qemu-system-x86)")


def boot_ramdisk(kernel: Path, initrd: Path, log: Path,
                 timeout: float = BOOT_TIMEOUT) -> tuple[float, float, bytes]:
    """Boot the pair (TCG) until the ramdisk's prompt, then type a command
    and wait for its answer. Returns the seconds to the prompt, to the
    answer, and the console output.

    qemu is driven directly, not through ``dib boot --kernel``: the test types
    into the busybox shell, which has no login for ``dib boot --exec``.
    """
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot",
            "-nic", "none", "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyS0"]
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None
    output = bytearray()
    prompt_at = answer_at = 0.0
    try:
        while time.monotonic() - start < timeout:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            output += chunk
            if not prompt_at and PROMPT in output:
                prompt_at = time.monotonic() - start
                # The shell really reads and runs what is typed.
                proc.stdin.write(b"echo dib-$((6*7)) $(cat /proc/cmdline)\n")
                proc.stdin.flush()
            if prompt_at and b"dib-42 console=ttyS0" in output:
                answer_at = time.monotonic() - start
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.write_bytes(bytes(output))
    return prompt_at, answer_at, bytes(output)


@needs_build_host
@needs_qemu
def test_ramdisk_image_create_boots_to_the_ramdisk_shell(builds):
    before = mountinfo()
    started = time.monotonic()
    result = builds.run("debian-minimal", name="deploy", ramdisk=True)
    build_seconds = time.monotonic() - started
    assert result.returncode == 0, result.output[-4000:]
    out = builds.scratch
    kernel, initramfs = out / "deploy.kernel", out / "deploy.initramfs"
    assert kernel.is_file() and initramfs.is_file(), sorted(os.listdir(out))
    # No disk image in a ramdisk build.
    assert not list(out.glob("deploy.qcow2")) and not list(out.glob("deploy.raw"))
    assert initramfs.read_bytes()[:2] == b"\x1f\x8b"          # gzip
    assert kernel.read_bytes()[0x202:0x206] == b"HdrS"         # x86 boot protocol
    assert builds.leaked_mounts(before) == []

    prompt_at, answer_at, console = boot_ramdisk(kernel, initramfs, out / "boot.log")
    tail = console[-3000:].decode(errors="replace")
    assert prompt_at, f"no '{PROMPT.decode()}' within {BOOT_TIMEOUT:g} s:\n{tail}"
    assert answer_at, f"the ramdisk's shell did not answer:\n{tail}"
    assert b"dib ramdisk: init done" in console
    print(f"\nramdisk build {build_seconds:.0f} s, initramfs "
          f"{initramfs.stat().st_size / 2**20:.0f} MiB, prompt after {prompt_at:.1f} s")


@needs_build_host
def test_baremetal_writes_kernel_and_initrd_beside_the_image(builds):
    before = mountinfo()
    started = time.monotonic()
    result = builds.run("debian-minimal", "vm", "baremetal", name="overcloud")
    build_seconds = time.monotonic() - started
    assert result.returncode == 0, result.output[-4000:]
    out = builds.scratch
    image, vmlinuz, initrd = (out / f"overcloud.{ext}" for ext in ("qcow2", "vmlinuz", "initrd"))
    assert image.is_file() and vmlinuz.is_file() and initrd.is_file(), sorted(os.listdir(out))
    assert vmlinuz.read_bytes()[0x202:0x206] == b"HdrS"
    assert initrd.stat().st_size > 1 << 20
    assert "select_boot_kernel_initrd" not in result.output   # no error from it
    # the kernel and initrd a hook wrote beside the image are in its provenance
    statement = json.loads((out / "overcloud.provenance.json").read_text())
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == \
        {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (image, vmlinuz, initrd)}
    assert builds.leaked_mounts(before) == []
    print(f"\nbaremetal build {build_seconds:.0f} s")
