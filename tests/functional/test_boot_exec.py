"""dib boot on images dib builds: --exec over the serial console and over SSH,
--kernel/--initrd taken from the image's /boot, --seed, --grow, --nic2, and
dib test --boot running expect.yaml's exec checks.

Every boot runs under TCG (30-60 s each), so the tests share one
``debian-minimal vm`` build and combine what one boot can prove. Needs root,
the build tools, qemu-system-x86, qemu-img, mtools, dosfstools and debugfs.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from functional_support import CACHE_DIR, ROOT, Builds, needs_build_host

pytestmark = [pytest.mark.functional, needs_build_host]

GiB = 1024 ** 3
TOOLS = ("qemu-system-x86_64", "qemu-img", "mcopy", "mkfs.fat", "debugfs", "sfdisk")


def _missing_tool() -> str | None:
    from dib import runner
    missing = [tool for tool in TOOLS if runner.which(tool) is None]
    return f"missing host tools: {', '.join(missing)} (tools/install-host-deps)" \
        if missing else None


needs_boot_tools = pytest.mark.skipif(_missing_tool() is not None, reason=_missing_tool() or "")


@dataclass
class Image:
    qcow2: Path
    kernel: Path
    initrd: Path
    version: str
    scratch: Path


def _root_partition_offset(raw: Path) -> int:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(raw)], check=True,
                                      capture_output=True, text=True).stdout)["partitiontable"]
    (root,) = [p for p in table["partitions"] if p["type"] == "83"]
    return root["start"] * table.get("sectorsize", 512)


def _debugfs(raw: Path, offset: int, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, f"{raw}?offset={offset}"], check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def vm(tmp_path_factory) -> Image:
    """debian-minimal vm, and the kernel and initrd from its /boot."""
    reason = _missing_tool()
    if reason:
        pytest.skip(reason)
    builds = Builds(tmp_path_factory.mktemp("boot-exec") / "builds")
    result = builds.run("-t", "qcow2,raw", "debian-minimal", "vm", name="vm")
    assert result.returncode == 0, result.output[-3000:]
    raw = result.image.with_suffix(".raw")
    offset = _root_partition_offset(raw)
    names = _debugfs(raw, offset, "ls /boot").split()
    (kernel_name,) = [n for n in names if n.startswith("vmlinuz-")]
    version = kernel_name[len("vmlinuz-"):]
    kernel, initrd = builds.scratch / "vmlinuz", builds.scratch / "initrd"
    _debugfs(raw, offset, f"dump /boot/{kernel_name} {kernel}")
    _debugfs(raw, offset, f"dump /boot/initrd.img-{version} {initrd}")
    assert kernel.stat().st_size > 1024 ** 2 and initrd.stat().st_size > 1024 ** 2
    raw.unlink()
    return Image(result.image.with_suffix(".qcow2"), kernel, initrd, version, builds.scratch)


def _dib_boot(*args: str, log: Path) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, "-m", "dib.cli.main", "boot", "--json",
                           "--log", str(log), *args],
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"no JSON report:\n{proc.stdout}\n{proc.stderr}") from None
    print("boot", args[:1], {k: report.get(k) for k in ("seconds", "milestones",
                                                       "exec_seconds")})
    return proc, report


def _console(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no console log)"


def _leftovers(report: dict) -> list[str]:
    """The boot's scratch directory, and any process still using it or the image."""
    scratch = {Path(match.group(1)) for arg in report["argv"]
               for match in [re.search(r"file[:=](/[^,]*/dib-boot-[^/,]+)/", arg)] if match}
    left = [str(d) for d in scratch if d.exists()]
    marks = [str(d) for d in scratch] + [report["image"] or report.get("kernel")]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in cmdline and any(m and m in cmdline for m in marks):
            left.append(f"process {pid}: {cmdline.replace(chr(0), ' ')[:200]}")
    return left


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@needs_boot_tools
def test_exec_over_the_serial_console_reports_output_and_status(vm):
    before = _sha256(vm.qcow2)
    log = vm.scratch / "serial.log"
    proc, report = _dib_boot(str(vm.qcow2), "--timeout", "300",
                             "--exec", "uname -r",
                             "--exec", "id -u; test -w /etc/passwd && echo root-can-write",
                             "--exec", "echo to-stderr >&2; exit 3", log=log)
    assert report["reached"], _console(log)
    assert report["exec_error"] is None, report["exec_error"] + _console(log)
    assert proc.returncode == 1, proc.stderr
    assert "command 'echo to-stderr >&2; exit 3' exited with status 3" in proc.stderr
    assert report["exec"] == [
        {"command": "uname -r", "status": 0, "output": vm.version + "\n"},
        {"command": "id -u; test -w /etc/passwd && echo root-can-write", "status": 0,
         "output": "0\nroot-can-write\n"},
        {"command": "echo to-stderr >&2; exit 3", "status": 3, "output": "to-stderr\n"}]
    assert report["system_state"] in ("running", "degraded")
    assert report["login"] == "serial" and not report["ok"]
    assert _sha256(vm.qcow2) == before, "-snapshot: the image is never written"
    assert _leftovers(report) == []


@needs_boot_tools
def test_kernel_and_initrd_from_boot_with_seed_grow_and_two_nics(vm):
    user_data = vm.scratch / "user-data"
    user_data.write_text("#cloud-config\n# from the functional test\n")
    log = vm.scratch / "kernel.log"
    proc, report = _dib_boot(
        str(vm.qcow2), "--kernel", str(vm.kernel), "--initrd", str(vm.initrd),
        "--append", "root=LABEL=cloudimg-rootfs ro", "--grow", "3G", "--nic2",
        "--seed", str(user_data), "--timeout", "300",
        "--exec", "cat /proc/cmdline",
        "--exec", "lsblk -b -d -n -o SIZE /dev/vda",
        "--exec", "ls /sys/class/net",
        "--exec", "blkid -L CIDATA",
        "--exec", "mount -r LABEL=CIDATA /mnt && cat /mnt/user-data /mnt/meta-data",
        log=log)
    assert proc.returncode == 0, proc.stderr + _console(log)
    outputs = [entry["output"] for entry in report["exec"]]
    # the kernel was ours, not GRUB's
    assert "GRUB" not in report["milestones"] and "Linux version" in report["milestones"]
    assert outputs[0].strip() == "console=ttyS0,115200 root=LABEL=cloudimg-rootfs ro"
    assert int(outputs[1]) == 3 * GiB
    assert report["grown_to"] == 3 * GiB
    nics = sorted(outputs[2].split())
    assert len(nics) == 3 and "lo" in nics, nics
    assert outputs[3].strip() == "/dev/vdb"
    assert outputs[4].startswith("#cloud-config\n# from the functional test\n")
    assert "instance-id: iid-dib-boot-" in outputs[4]
    assert "local-hostname: dib-boot" in outputs[4]
    assert _leftovers(report) == []


@needs_boot_tools
def test_ramdisk_boot_needs_no_image(vm):
    log = vm.scratch / "ramdisk.log"
    proc, report = _dib_boot("--kernel", str(vm.kernel), "--initrd", str(vm.initrd),
                             "--expect", "Loading, please wait", "--timeout", "120", log=log)
    assert proc.returncode == 0, proc.stderr + _console(log)
    assert report["image"] is None and report["memory_mb"] == 1024
    assert "Linux version" in report["milestones"]
    assert not any(arg.startswith("file=") for arg in report["argv"])


@needs_boot_tools
def test_ssh_login_into_a_cloud_init_image_with_a_seed(tmp_path):
    builds = Builds(tmp_path / "builds")
    result = builds.run("-t", "qcow2", "-p", "cloud-init,ifupdown,isc-dhcp-client",
                        "debian-minimal", "vm", "openssh-server", name="cloud")
    assert result.returncode == 0, result.output[-3000:]
    user_data = tmp_path / "user-data"
    user_data.write_text("#cloud-config\nwrite_files:\n  - path: /etc/dib-seeded\n"
                         "    content: from-the-seed\n")
    log = tmp_path / "ssh.log"
    proc, report = _dib_boot(str(result.image.with_suffix(".qcow2")), "--login", "ssh",
                             "--seed", str(user_data), "--timeout", "400",
                             "--exec", "cat /etc/dib-seeded",
                             "--exec", "id -un",
                             "--exec", "systemctl is-active ssh", log=log)
    assert proc.returncode == 0, proc.stderr + _console(log)
    assert [(e["status"], e["output"].strip()) for e in report["exec"]] == [
        (0, "from-the-seed"), (0, "root"), (0, "active")]
    assert report["login"] == "ssh" and report["nics"] == 1
    assert report["seed"] == ["user-data"]
    assert _leftovers(report) == []


@needs_boot_tools
def test_dib_test_boot_runs_the_exec_checks(tmp_path):
    elements = tmp_path / "elements"
    element = elements / "dt-boot"
    files = {
        "README.rst": "dt-boot\n=======\nA test fixture.\n",
        "post-install.d/10-dt-boot": "#!/bin/bash\nset -eu\nset -o pipefail\n"
                                     "echo booted-element > /etc/dt-boot\n",
        "test-elements/checks/element-deps": "dt-boot\n",
        "test-elements/checks/expect.yaml":
            "boot:\n"
            "  timeout: 300\n"
            "  exec:\n"
            "    - test -f /etc/dt-boot\n"
            "    - run: cat /etc/dt-boot\n"
            "      output: booted-element\n"
            "    - run: systemctl is-enabled no-such-unit.service\n"
            "      status: 1\n"
            "    - run: cat /etc/hostname\n"
            "      contains: no-such-host\n",
    }
    for rel, text in files.items():
        path = element / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (element / "post-install.d/10-dt-boot").chmod(0o755)
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "dib", "test", "dt-boot", "--boot", "--json", str(results),
         "--cache-dir", str(CACHE_DIR)],
        capture_output=True, text=True, timeout=1800, cwd=tmp_path,
        env=dict(os.environ, ELEMENTS_PATH=str(elements), PYTHONPATH=str(ROOT)))
    (result,) = json.loads(results.read_text())["results"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert result["status"] == "fail", result
    # the three checks that hold are silent; only the deliberate one fails
    hostname = result["boot"]["exec"][3]["output"].strip()
    assert result["reason"] == ("boot: exec 'cat /etc/hostname': output does not contain "
                                f"'no-such-host' (output: {hostname!r})")
    assert result["details"].splitlines()[0] == result["reason"][len("boot: "):]
    assert [e["status"] for e in result["boot"]["exec"]] == [0, 0, 1, 0]
    assert result["boot"]["exec"][1]["output"] == "booted-element\n"


def _dib_test(tmp_path: Path, elements: Path, *args: str) -> dict:
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "dib", "test", *args, "--json", str(results),
         "--cache-dir", str(CACHE_DIR)],
        capture_output=True, text=True, timeout=1800, cwd=tmp_path,
        env=dict(os.environ, ELEMENTS_PATH=str(elements), PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = json.loads(results.read_text())["results"]
    return result


@needs_boot_tools
def test_dib_test_reports_a_passed_boot_of_the_same_image_instead_of_booting_again(
        tmp_path):
    # A value of this run's own, so the first run of the case boots whatever
    # the shared cache holds from earlier runs of this test.
    run = hashlib.sha256(os.urandom(16)).hexdigest()[:12]
    elements = tmp_path / "elements"
    element = elements / "dt-pass"
    files = {
        "README.rst": "dt-pass\n=======\nA test fixture.\n",
        "post-install.d/10-dt-pass": f"#!/bin/bash\nset -eu\necho {run} > /etc/dt-pass\n",
        "test-elements/up/element-deps": "dt-pass\n",
        "test-elements/up/expect.yaml":
            f"boot:\n  timeout: 300\n  exec:\n    - run: cat /etc/dt-pass\n"
            f"      output: {run}\n",
    }
    for rel, text in files.items():
        path = element / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (element / "post-install.d/10-dt-pass").chmod(0o755)

    first = _dib_test(tmp_path, elements, "dt-pass")
    assert first["status"] == "pass", first
    assert first["boot"]["exec"][0]["output"].strip() == run
    assert "reused_from" not in first["boot"]
    # The same case again: every step comes from the cache, so the image is
    # made of the same inputs, and the pass is reported, not repeated.
    second = _dib_test(tmp_path, elements, "dt-pass")
    assert second["status"] == "pass", second
    assert second["boot"]["reused_from"]
    assert second["reason"].startswith("boot not repeated"), second
    assert second["boot"]["exec"] == first["boot"]["exec"]
