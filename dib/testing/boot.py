"""Boot an image in qemu and time the milestones on its serial console.

``boot_check`` always boots with ``-snapshot`` (the image is never changed),
uses TCG unless /dev/kvm can really create a VM, and kills qemu's whole
process group at the end, also on errors and Ctrl-C.
"""
from __future__ import annotations

import fcntl
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dib.errors import BootCheckError, PreflightError

OVMF_BIOS = Path("/usr/share/ovmf/OVMF.fd")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")

#: milestone name → text that marks it on the serial console
MILESTONES = [("GRUB", "GRUB"), ("Linux version", "Linux version"),
              ("Welcome to", "Welcome to"), ("login:", "login:")]
#: a milestone only counts once its predecessor was seen ("Welcome to GRUB")
_AFTER = {"Welcome to": "Linux version"}
_KVM_CREATE_VM = 0xAE01


@dataclass
class BootReport:
    image: Path
    firmware: str
    expect: str
    reached: bool
    seconds: float
    milestones: dict[str, float] = field(default_factory=dict)
    log_path: Path | None = None
    argv: list[str] = field(default_factory=list)
    accel: str = "tcg"
    exit_reason: str = ""
    tail: str = ""

    def to_dict(self) -> dict:
        return {"image": str(self.image), "firmware": self.firmware, "expect": self.expect,
                "reached": self.reached, "seconds": round(self.seconds, 2),
                "milestones": {k: round(v, 2) for k, v in self.milestones.items()},
                "log_path": str(self.log_path) if self.log_path else None,
                "argv": self.argv, "accel": self.accel, "exit_reason": self.exit_reason}


def _cpu_has_virt(cpuinfo: str = "/proc/cpuinfo") -> bool:
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "vmx" in flags or "svm" in flags
    except OSError:
        pass
    return False


def kvm_usable(path: str = "/dev/kvm") -> bool:
    """True only if the CPU has vmx/svm and /dev/kvm can create a VM.

    On this kind of host /dev/kvm exists and even creates a VM, but without
    the CPU's virtualisation flag guests crawl; TCG is far faster there.
    """
    if os.environ.get("DIB_QEMU_ACCEL") in ("tcg", "kvm"):
        return os.environ["DIB_QEMU_ACCEL"] == "kvm"
    if not _cpu_has_virt():
        return False
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        vm = fcntl.ioctl(fd, _KVM_CREATE_VM, 0)
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _image_format(image: Path) -> str:
    suffix = image.suffix.lower()
    return {".qcow2": "qcow2", ".vhd": "vpc", ".vmdk": "vmdk", ".vdi": "vdi"}.get(suffix, "raw")


def guest_cpus() -> int:
    """vCPUs for the guest: systemd starts its units in parallel, and under
    TCG each vCPU is a host thread, so more than the host's cores only slows."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def qemu_argv(image: Path, *, firmware: str, memory_mb: int = 1024, accel: str = "tcg",
              vars_copy: Path | None = None, qemu: str = "qemu-system-x86_64") -> list[str]:
    argv = [qemu, "-machine", "q35", "-accel", accel, "-m", str(memory_mb),
            "-smp", str(guest_cpus()),
            "-nographic", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-snapshot",
            "-nic", "none",
            "-drive", f"file={image},format={_image_format(image)},if=virtio"]
    if firmware == "uefi":
        if OVMF_BIOS.exists():
            argv += ["-bios", str(OVMF_BIOS)]
        elif OVMF_CODE.exists() and vars_copy is not None:
            argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,file={vars_copy}"]
        else:
            raise PreflightError("UEFI boot needs OVMF firmware (/usr/share/ovmf/OVMF.fd)",
                                 hint="apt-get install ovmf")
    elif firmware != "bios":
        raise BootCheckError(f"unknown firmware {firmware!r}: use bios or uefi")
    return argv


def boot_check(image: Path, *, firmware: str = "bios", timeout: float = 90.0,
               expect: str | None = None, memory_mb: int = 1024,
               log_path: Path | None = None) -> BootReport:
    """Boot ``image`` and wait for ``expect`` (default ``login:``) on the serial console."""
    image = Path(image)
    if not image.exists():
        raise BootCheckError(f"image {image} does not exist")
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise PreflightError("the boot check needs qemu-system-x86_64",
                             hint="apt-get install qemu-system-x86")
    marker = expect or "login:"
    accel = "kvm" if kvm_usable() else "tcg"
    with tempfile.TemporaryDirectory(prefix="dib-boot-") as tmp:
        vars_copy = None
        if firmware == "uefi" and not OVMF_BIOS.exists() and OVMF_VARS.exists():
            vars_copy = Path(tmp) / "OVMF_VARS.fd"
            shutil.copyfile(OVMF_VARS, vars_copy)
        argv = qemu_argv(image.resolve(), firmware=firmware, memory_mb=memory_mb,
                         accel=accel, vars_copy=vars_copy, qemu=qemu)
        return _watch(argv, image, firmware, marker, timeout, log_path, accel)


def _watch(argv: list[str], image: Path, firmware: str, marker: str, timeout: float,
           log_path: Path | None, accel: str) -> BootReport:
    watch = [(name, text.encode()) for name, text in MILESTONES]
    if marker not in [text for _, text in MILESTONES]:
        watch.append((marker, marker.encode()))
    milestones: dict[str, float] = {}
    buffer = bytearray()
    log = open(log_path, "wb") if log_path else None
    start = time.monotonic()
    reason = "timeout"
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        while True:
            now = time.monotonic()
            remaining = start + timeout - now
            if remaining <= 0:
                reason = "timeout"
                break
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if not ready:
                if proc.poll() is not None:
                    reason = f"qemu exited with status {proc.returncode}"
                    break
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                proc.wait(timeout=5)
                reason = f"qemu exited with status {proc.returncode}"
                break
            elapsed = time.monotonic() - start
            if log:
                log.write(chunk)
                log.flush()
            if "first output" not in milestones:
                milestones["first output"] = elapsed
            scan_from = max(0, len(buffer) - 64)
            buffer += chunk
            for name, text in watch:
                after = _AFTER.get(name)
                if after and after not in milestones:
                    continue
                if name not in milestones and buffer.find(text, scan_from) >= 0:
                    milestones[name] = elapsed
            if marker in milestones or (marker == "login:" and "login:" in milestones):
                reason = "marker"
                break
            if len(buffer) > 1 << 20:
                del buffer[:len(buffer) - 4096]
    finally:
        _kill(proc)
        if log:
            log.close()
    seconds = time.monotonic() - start
    reached = marker in milestones
    tail = bytes(buffer[-2000:]).decode(errors="replace")
    return BootReport(image=image, firmware=firmware, expect=marker, reached=reached,
                      seconds=seconds, milestones=milestones, log_path=log_path, argv=argv,
                      accel=accel, exit_reason=reason, tail=tail)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()
