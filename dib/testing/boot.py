"""Boot an image, or a kernel and initramfs, in qemu; time the milestones on
its serial console; optionally run commands in the guest.

``dib boot`` and ``dib test --boot`` both describe a boot with a
:class:`BootSpec` and call :func:`boot`, which returns a :class:`BootReport`:

* the disk is ``image``, or with ``grow`` a qcow2 overlay over it with a
  larger virtual size, made in a temporary directory;
* ``kernel`` (with ``initrd`` and ``append``) is booted directly (qemu
  ``-kernel``): a deploy ramdisk needs no image at all, a partition image
  with an external kernel gets ``root=`` from ``append``;
* ``seed`` attaches a NoCloud seed disk (:mod:`dib.testing.seed`) after the
  image;
* ``nics`` adds that many virtio NICs on qemu's user network (none by default);
* ``exec`` runs commands in the guest once the marker was seen
  (:mod:`dib.testing.guest`), over the serial console or SSH;
* GRUB's menu is answered with Enter as soon as it is drawn, which boots
  its default entry without waiting out the countdown (``wait_menu`` keeps
  the countdown).

qemu always runs with ``-snapshot`` (nothing is ever written to the image),
with TCG unless /dev/kvm really works, in a process group of its own that is
killed at the end, on errors, on Ctrl-C and on SIGTERM; it also dies with dib
if dib is SIGKILLed.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping, Sequence

from dib import runner
from dib.errors import BootCheckError, Interrupted, PreflightError
from dib.testing import guest
from dib.testing import seed as seeds
from dib.testing.guest import ExecOutput, ExecResult, GuestExecError

OVMF_BIOS = Path("/usr/share/ovmf/OVMF.fd")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")

#: milestone name → text that marks it on the serial console
MILESTONES = [("GRUB", "GRUB"), ("Linux version", "Linux version"),
              ("Welcome to", "Welcome to"), ("login:", "login:")]
#: a milestone only counts once its predecessor was seen ("Welcome to GRUB")
_AFTER = {"Welcome to": "Linux version"}
#: GRUB's menu footer: once drawn, Enter boots the highlighted (default) entry
GRUB_MENU = b"Press enter to boot the selected OS"
#: the milestone recorded when the menu was answered
MENU_ANSWERED = "GRUB menu answered"
_KVM_CREATE_VM = 0xAE01

SERIAL_CONSOLE = "console=ttyS0,115200"
DEFAULT_MEMORY_MB = 1024
#: a deploy ramdisk unpacks into RAM: an IPA initramfs needs about 3 GiB
RAMDISK_MEMORY_MB = 3072
_BIG_INITRD = 64 * 1024 ** 2
MAX_NICS = 8
_CONSOLE_KEEP = 1 << 20
_LOGIN_TRIES = 3
_LOGIN_WAIT = 30.0


LOG = logging.getLogger("dib.boot")


@dataclass
class BootSpec:
    """What to boot and what to check; see the module docstring."""

    image: Path | None = None
    firmware: str = "bios"
    kernel: Path | None = None
    initrd: Path | None = None
    append: str | None = None
    memory_mb: int | None = None         # None: 1 GiB, or 3 GiB for a big ramdisk
    nics: int = 0
    seed: Mapping[str, Path] | None = None   # "user-data", "meta-data", "network-config"
    grow: int | None = None              # bytes
    exec: Sequence[str] = ()
    login: str = "serial"
    ssh_key: Path | None = None
    expect: str | None = None            # None: login:
    timeout: float = 180.0
    log_path: Path | None = None
    # Wait out GRUB's menu countdown instead of pressing Enter at it: the
    # countdown (DIB_GRUB_TIMEOUT, 5 s by default) is idle time for a check.
    wait_menu: bool = False


@dataclass
class BootReport:
    image: Path | None
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
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    memory_mb: int = DEFAULT_MEMORY_MB
    nics: int = 0
    seed: list[str] = field(default_factory=list)
    grown_to: int | None = None
    login: str = ""
    system_state: str = ""
    exec_results: list[ExecResult] = field(default_factory=list)
    exec_error: str = ""
    exec_seconds: float | None = None
    #: qemu's exit status when it ended before the marker (negative: a signal)
    qemu_status: int | None = None
    #: why the first qemu died before the marker, when it was started again
    restarted_after: str = ""

    @property
    def failed_commands(self) -> list[ExecResult]:
        return [r for r in self.exec_results if not r.ok]

    @property
    def ok(self) -> bool:
        """The marker was seen and every command ran and exited 0."""
        return self.reached and not self.exec_error and not self.failed_commands

    def to_dict(self) -> dict:
        data = {"image": str(self.image) if self.image else None, "firmware": self.firmware,
                "expect": self.expect, "reached": self.reached, "ok": self.ok,
                "seconds": round(self.seconds, 2),
                "milestones": {k: round(v, 2) for k, v in self.milestones.items()},
                "log_path": str(self.log_path) if self.log_path else None,
                "argv": self.argv, "accel": self.accel, "exit_reason": self.exit_reason,
                "memory_mb": self.memory_mb, "nics": self.nics}
        if self.kernel:
            data.update(kernel=str(self.kernel), append=self.append,
                        initrd=str(self.initrd) if self.initrd else None)
        if self.seed:
            data["seed"] = self.seed
        if self.grown_to is not None:
            data["grown_to"] = self.grown_to
        if self.restarted_after:
            data["restarted_after"] = self.restarted_after
        if self.login:
            data.update(login=self.login, system_state=self.system_state,
                        exec=[r.to_dict() for r in self.exec_results],
                        exec_error=self.exec_error or None,
                        exec_seconds=None if self.exec_seconds is None
                        else round(self.exec_seconds, 2))
        return data


# -- host facts ------------------------------------------------------------------


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


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def parse_size(text: str | int, *, what: str, bare_unit: str = "") -> int:
    """A size as qemu reads one: K, M, G, T (optionally KiB, GB...) are powers
    of 1024; a bare number is in ``bare_unit``."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    match = _SIZE_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise BootCheckError(f"{what}: invalid size {text!r}",
                             hint="a number with an optional unit K, M, G or T "
                                  "(powers of 1024, as qemu reads them), e.g. 2G or 3072M")
    unit = match.group(2).upper() or bare_unit
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def kernel_append(append: str | None) -> str:
    """The kernel command line of a direct kernel boot: ttyS0 is the console
    dib watches, so it is there unless ``append`` names a console itself."""
    if append is None or not append.strip():
        return SERIAL_CONSOLE
    if re.search(r"(^|\s)console=", append):
        return append.strip()
    return f"{SERIAL_CONSOLE} {append.strip()}"


def default_memory_mb(spec: BootSpec) -> int:
    if spec.memory_mb:
        return spec.memory_mb
    if spec.image is None and spec.initrd is not None:
        try:
            if Path(spec.initrd).stat().st_size > _BIG_INITRD:
                return RAMDISK_MEMORY_MB
        except OSError:
            pass
    return DEFAULT_MEMORY_MB


# -- the qemu command line -------------------------------------------------------------


def _opt_path(path: Path | str) -> str:
    """A path inside a qemu option value, where a comma must be doubled."""
    return str(path).replace(",", ",,")


def smbios_credential(name: str, value: str) -> list[str]:
    """A systemd system credential (systemd 252+) in an SMBIOS type 11 string."""
    encoded = base64.b64encode(value.encode()).decode()
    return ["-smbios", f"type=11,value=io.systemd.credential.binary:{name}={encoded}"]


def qemu_argv(image: Path | None, *, firmware: str, memory_mb: int = DEFAULT_MEMORY_MB,
              accel: str = "tcg", vars_copy: Path | None = None,
              qemu: str = "qemu-system-x86_64", image_format: str | None = None,
              kernel: Path | None = None, initrd: Path | None = None,
              append: str | None = None, seed: Path | None = None, nics: int = 0,
              ssh_port: int | None = None,
              credentials: Sequence[tuple[str, str]] = (),
              exec_channel: Path | None = None) -> list[str]:
    argv = [qemu, "-machine", "q35", "-accel", accel, "-m", str(memory_mb),
            "-smp", str(guest_cpus()),
            "-nographic", "-monitor", "none", "-serial", "stdio"]
    if exec_channel is not None:
        argv += ["-serial", f"file:{_opt_path(exec_channel)}"]   # the guest's ttyS1
    argv += ["-no-reboot", "-snapshot"]
    if image is not None:
        fmt = image_format or _image_format(Path(image))
        argv += ["-drive", f"file={_opt_path(image)},format={fmt},if=virtio"]
    if seed is not None:
        argv += ["-drive", f"file={_opt_path(seed)},format=raw,if=virtio,readonly=on"]
    if kernel is not None:
        argv += ["-kernel", str(kernel)]
        if initrd is not None:
            argv += ["-initrd", str(initrd)]
        argv += ["-append", kernel_append(append)]
    if nics <= 0:
        argv += ["-nic", "none"]
    for index in range(nics):
        netdev = f"user,id=net{index}"
        if index == 0 and ssh_port is not None:
            netdev += f",hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
        argv += ["-netdev", netdev, "-device", f"virtio-net-pci,netdev=net{index}"]
    for name, value in credentials:
        argv += smbios_credential(name, value)
    if firmware == "uefi":
        if OVMF_BIOS.exists():
            argv += ["-bios", str(OVMF_BIOS)]
        elif OVMF_CODE.exists() and vars_copy is not None:
            argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,file={_opt_path(vars_copy)}"]
        else:
            raise PreflightError("UEFI boot needs OVMF firmware (/usr/share/ovmf/OVMF.fd)",
                                 hint="apt-get install ovmf")
    elif firmware != "bios":
        raise BootCheckError(f"unknown firmware {firmware!r}: use bios or uefi")
    return argv


# -- checks before anything starts -------------------------------------------------------


def check_spec(spec: BootSpec) -> None:
    """Every mistake in ``spec`` the user can make, before qemu starts."""
    if spec.firmware not in ("bios", "uefi"):
        raise BootCheckError(f"unknown firmware {spec.firmware!r}: use bios or uefi")
    if spec.image is None and spec.kernel is None:
        raise BootCheckError("nothing to boot: give an IMAGE, or --kernel (and --initrd) "
                             "for a ramdisk")
    for label, path in (("image", spec.image), ("--kernel", spec.kernel),
                        ("--initrd", spec.initrd)):
        if path is not None and not Path(path).is_file():
            raise BootCheckError(f"{label} {path} does not exist")
    if spec.kernel is None and (spec.initrd is not None or spec.append is not None):
        raise BootCheckError("--initrd and --append need --kernel",
                             hint="an image boots with the command line its own "
                                  "bootloader has")
    if spec.grow is not None and spec.image is None:
        raise BootCheckError("--grow needs an IMAGE to grow")
    if not 0 <= spec.nics <= MAX_NICS:
        raise BootCheckError(f"--nics {spec.nics}: give 0 to {MAX_NICS}")
    if spec.memory_mb is not None and spec.memory_mb < 64:
        raise BootCheckError(f"--memory {spec.memory_mb} MiB is too little to boot Linux")
    if spec.timeout <= 0:
        raise BootCheckError("--timeout must be more than 0 seconds")
    guest.check_login_method(spec.login)
    for name, path in (spec.seed or {}).items():
        if name not in seeds.SEED_FILES:
            raise BootCheckError(f"--seed: unknown seed file {name!r}",
                                 hint=f"a seed holds {', '.join(seeds.SEED_FILES)}")
        if not Path(path).is_file():
            raise BootCheckError(f"--seed: {name} file {path} does not exist")
    if spec.seed and "user-data" not in spec.seed:
        raise BootCheckError("--seed needs a user-data file")


# -- preparing the run -----------------------------------------------------------


@dataclass
class _Prepared:
    disk: Path | None = None
    disk_format: str | None = None
    grown_to: int | None = None
    seed: Path | None = None
    seed_files: list[str] = field(default_factory=list)
    credentials: list[tuple[str, str]] = field(default_factory=list)
    exec_channel: Path | None = None
    nonce: str = ""
    ssh_key: Path | None = None
    ssh_port: int | None = None
    nics: int = 0


def grown_overlay(image: Path, size: int, directory: Path) -> Path:
    """A qcow2 overlay over ``image`` with virtual size ``size``; the image
    itself is only read."""
    info = json.loads(runner.run(["qemu-img", "info", "--output=json", str(image)],
                                 what="qemu-img info").stdout)
    current = int(info["virtual-size"])
    if size < current:
        raise BootCheckError(f"--grow {_human(size)} is smaller than {image}'s "
                             f"{_human(current)}",
                             hint="give a size at least as large as the image")
    overlay = Path(directory) / "grown.qcow2"
    runner.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", info["format"],
                "-b", str(Path(image).resolve()), str(overlay), str(size)],
               what="qemu-img create (grown overlay)")
    return overlay


def _human(size: int) -> str:
    for unit, factor in (("TiB", 1024 ** 4), ("GiB", 1024 ** 3), ("MiB", 1024 ** 2)):
        if size >= factor:
            return f"{size / factor:.4g} {unit}"
    return f"{size} bytes"


def _prepare(spec: BootSpec, tmp: Path) -> _Prepared:
    prep = _Prepared(nics=spec.nics)
    if spec.image is not None:
        prep.disk = Path(spec.image).resolve()
        if spec.grow is not None:
            prep.disk = grown_overlay(prep.disk, spec.grow, tmp)
            prep.disk_format, prep.grown_to = "qcow2", spec.grow
    files = {name: Path(path).read_bytes() for name, path in (spec.seed or {}).items()}
    if spec.exec and spec.login == "ssh":
        prep.ssh_key, public = guest.ssh_key_pair(tmp, spec.ssh_key)
        source = str((spec.seed or {}).get("user-data", "user-data"))
        files["user-data"] = seeds.with_ssh_key(files.get("user-data"), public,
                                                source=source)
        prep.credentials.append(("ssh.authorized_keys.root", public + "\n"))
        prep.ssh_port = guest.free_port()
        prep.nics = max(prep.nics, 1)
    elif spec.exec:
        prep.nonce = "dib-exec-" + secrets.token_hex(6)
        prep.credentials.append(("tmpfiles.extra", guest.serial_login_tmpfiles(
            list(spec.exec), prep.nonce, min(guest.SETTLE_SECONDS, int(spec.timeout)))))
        prep.exec_channel = tmp / "exec.out"
        prep.exec_channel.touch()
    if files:
        prep.seed = seeds.make_seed(tmp / "seed.img", files)
        prep.seed_files = sorted(files)
    return prep


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C does, so qemu and the scratch files go."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise Interrupted(f"boot stopped by signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- the console ------------------------------------------------------------------------


class _Console:
    """qemu's serial console, read by a thread: the log file, the milestones,
    and waits for text; ``send`` types on it."""

    def __init__(self, vm: runner.Spawned, watch: list[tuple[str, bytes]],
                 log: BinaryIO | None, started: float, *, answer_menu: bool = False) -> None:
        assert vm.stdout is not None
        # Our own descriptor: the reader closes it, whatever happens to vm's pipe.
        self._fd = os.dup(vm.stdout.fileno())
        self._vm = vm
        self._watch = watch
        self._log = log
        self._started = started
        self._cond = threading.Condition()
        self._buffer = bytearray()
        self._base = 0
        self.milestones: dict[str, float] = {}
        self.closed = False
        self._answer_menu = answer_menu
        self._thread = threading.Thread(target=self._pump, name="dib-boot-console",
                                        daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while True:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    break
                self._take(chunk)
        except OSError:
            pass
        finally:
            os.close(self._fd)
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def _take(self, chunk: bytes) -> None:
        elapsed = time.monotonic() - self._started
        if self._log:
            self._log.write(chunk)
            self._log.flush()
        with self._cond:
            scan_from = max(0, len(self._buffer) - 64)
            self._buffer += chunk
            self.milestones.setdefault("first output", elapsed)
            for name, text in self._watch:
                after = _AFTER.get(name)
                if after and after not in self.milestones:
                    continue
                if name not in self.milestones and self._buffer.find(text, scan_from) >= 0:
                    self.milestones[name] = elapsed
            answer = (self._answer_menu and MENU_ANSWERED not in self.milestones
                      and self._buffer.find(GRUB_MENU, scan_from) >= 0)
            if answer:
                self.milestones[MENU_ANSWERED] = elapsed
            if len(self._buffer) > _CONSOLE_KEEP:
                drop = len(self._buffer) - _CONSOLE_KEEP // 2
                del self._buffer[:drop]
                self._base += drop
            self._cond.notify_all()
        if answer:
            self.send(b"\r")

    @property
    def position(self) -> int:
        with self._cond:
            return self._base + len(self._buffer)

    def wait_milestone(self, name: str, deadline: float) -> bool:
        with self._cond:
            while name not in self.milestones:
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
            return True

    def wait_for(self, texts: Sequence[bytes], deadline: float, since: int = 0
                 ) -> bytes | None:
        """The first of ``texts`` seen after console offset ``since``, or None
        when qemu stopped or the deadline passed."""
        with self._cond:
            while True:
                start = max(0, since - self._base)
                for text in texts:
                    if self._buffer.find(text, start) >= 0:
                        return text
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.5))

    def send(self, data: bytes) -> None:
        try:
            assert self._vm.stdin is not None
            self._vm.stdin.write(data)
            self._vm.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def tail(self, size: int = 2000) -> str:
        with self._cond:
            return bytes(self._buffer[-size:]).decode(errors="replace")

    def join(self) -> None:
        self._thread.join(timeout=10)


# -- the boot ----------------------------------------------------------------------------


def boot(spec: BootSpec) -> BootReport:
    """Boot as ``spec`` says and report what the console showed and what
    the commands returned. Raises a DibError only for a bad spec or host."""
    check_spec(spec)
    qemu = runner.which("qemu-system-x86_64")
    if qemu is None:
        raise PreflightError("the boot check needs qemu-system-x86_64",
                             hint="apt-get install qemu-system-x86")
    if spec.grow is not None:
        runner.require_tools([("qemu-img", "qemu-utils")], "--grow")
    accel = "kvm" if kvm_usable() else "tcg"
    memory = default_memory_mb(spec)
    with tempfile.TemporaryDirectory(prefix="dib-boot-") as tmp, _sigterm_raises():
        vars_copy = None
        if spec.firmware == "uefi" and not OVMF_BIOS.exists() and OVMF_VARS.exists():
            vars_copy = Path(tmp) / "OVMF_VARS.fd"
            shutil.copyfile(OVMF_VARS, vars_copy)
        prep = _prepare(spec, Path(tmp))
        argv = qemu_argv(prep.disk, firmware=spec.firmware, memory_mb=memory, accel=accel,
                         vars_copy=vars_copy, qemu=qemu, image_format=prep.disk_format,
                         kernel=_resolved(spec.kernel), initrd=_resolved(spec.initrd),
                         append=spec.append, seed=prep.seed, nics=prep.nics,
                         ssh_port=prep.ssh_port, credentials=prep.credentials,
                         exec_channel=prep.exec_channel)
        report = BootReport(image=Path(spec.image) if spec.image else None,
                            firmware=spec.firmware, expect=spec.expect or "login:",
                            reached=False, seconds=0.0, log_path=spec.log_path, argv=argv,
                            accel=accel, memory_mb=memory, nics=prep.nics,
                            kernel=spec.kernel, initrd=spec.initrd,
                            append=kernel_append(spec.append) if spec.kernel else "",
                            seed=prep.seed_files, grown_to=prep.grown_to,
                            login=spec.login if spec.exec else "")
        _run_restarting_a_crashed_qemu(argv, spec, prep, report)
        return report


def _run_restarting_a_crashed_qemu(argv: list[str], spec: BootSpec, prep: _Prepared,
                                   report: BootReport) -> None:
    """Boot, and once more when qemu itself died of a signal before the
    marker: TCG's emulator has been seen to crash (SIGSEGV) under load in
    the guest's first second, which no image can cause, and with
    ``-snapshot`` the second start sees the image as the first did."""
    _run(argv, spec, prep, report)
    if report.reached or report.qemu_status is None or report.qemu_status >= 0:
        return
    report.restarted_after = report.exit_reason
    LOG.warning("boot: %s before %r; starting qemu once more", report.exit_reason,
                report.expect)
    _run(argv, spec, prep, report, again=True)


def _resolved(path: Path | None) -> Path | None:
    return Path(path).resolve() if path is not None else None


def _run(argv: list[str], spec: BootSpec, prep: _Prepared, report: BootReport,
         again: bool = False) -> None:
    """One qemu; ``again``: the second, whose console the log gets after the first's."""
    marker = report.expect
    watch = [(name, text.encode()) for name, text in MILESTONES]
    if marker not in [text for _, text in MILESTONES]:
        watch.append((marker, marker.encode()))
    log = open(spec.log_path, "ab" if again else "wb") if spec.log_path else None
    if log and again:
        log.write(f"\n--- dib boot: {report.exit_reason}; qemu started again ---\n".encode())
    report.qemu_status = None
    started = time.monotonic()
    deadline = started + spec.timeout
    console = None
    try:
        with runner.spawn(argv, stdin=subprocess.PIPE, what="qemu") as vm:
            console = _Console(vm, watch, log, started, answer_menu=not spec.wait_menu)
            report.reached = console.wait_milestone(marker, deadline)
            if not report.reached:
                status = report.qemu_status = _exit_status(vm, console)
                report.exit_reason = ("timeout" if status is None
                                      else f"qemu exited with status {status}")
            else:
                report.exit_reason = "marker"
                if spec.exec:
                    _exec(console, vm, spec, prep, report, deadline)
        report.seconds = time.monotonic() - started
    finally:
        if console is not None:
            console.join()
            report.milestones = dict(console.milestones)
            report.tail = console.tail()
        if log:
            log.close()


def _exit_status(vm: runner.Spawned, console: _Console) -> int | None:
    """qemu's exit status, None while it runs. Its console closes a moment
    before the kernel has it reaped: give it that moment."""
    status = vm.poll()
    waited = 0.0
    while status is None and console.closed and waited < 2.0:
        time.sleep(0.02)
        waited += 0.02
        status = vm.poll()
    return status


def _exec(console: _Console, vm: runner.Spawned, spec: BootSpec, prep: _Prepared,
          report: BootReport, deadline: float) -> None:
    started = time.monotonic()
    try:
        if spec.login == "ssh":
            assert prep.ssh_key is not None and prep.ssh_port is not None
            out = guest.run_over_ssh(list(spec.exec), prep.ssh_key, prep.ssh_port, deadline,
                                     alive=lambda: vm.poll() is None)
        else:
            out = _exec_serial(console, list(spec.exec), prep, deadline)
        report.system_state = out.state
        report.exec_results = out.results
        if not out.done:
            report.exec_error = ("the commands did not all finish within the timeout "
                                 f"({spec.timeout:g} s)")
    except GuestExecError as exc:
        report.exec_error = exc.message
        report.exec_results = [ExecResult(c, None, "") for c in spec.exec]
    report.exec_seconds = time.monotonic() - started


def _exec_serial(console: _Console, commands: list[str], prep: _Prepared,
                 deadline: float) -> ExecOutput:
    """Log in as dib-exec on ttyS0; collect what the guest writes to ttyS1."""
    assert prep.exec_channel is not None
    if console.wait_for([b"login:"], deadline) is None:
        raise GuestExecError("no login: prompt on the serial console",
                             hint="--exec logs in on ttyS0; the image needs a getty there "
                                  "(console=ttyS0 on its kernel command line)")
    start = f"{prep.nonce} start".encode()
    refused = [b"Password:", b"Login incorrect"]
    seen, since = None, console.position
    for _ in range(_LOGIN_TRIES):
        since = console.position
        console.send(f"{guest.EXEC_USER}\n".encode())
        seen = console.wait_for([start, *refused],
                                min(deadline, time.monotonic() + _LOGIN_WAIT), since)
        if seen is not None or console.closed or time.monotonic() >= deadline:
            break
    if seen in refused:
        raise GuestExecError(
            f"the guest did not let {guest.EXEC_USER} log in without a password",
            hint="the serial login needs systemd 252 or newer (it reads the "
                 "tmpfiles.extra credential) and pam_unix with nullok; with sshd "
                 "in the image use --login ssh")
    if seen != start:
        raise GuestExecError(f"no shell after typing {guest.EXEC_USER!r} at the login prompt"
                             + (" (qemu stopped)" if console.closed else ""))
    done = f"{prep.nonce} done".encode()
    while True:
        out = guest.parse_exec_output(prep.exec_channel.read_bytes(), commands, prep.nonce)
        if out.done or console.closed or time.monotonic() >= deadline:
            return out
        console.wait_for([done], min(deadline, time.monotonic() + 1.0), since)


def boot_check(image: Path | None, *, firmware: str = "bios", timeout: float = 90.0,
               expect: str | None = None, memory_mb: int | None = None,
               log_path: Path | None = None, **more: object) -> BootReport:
    """Boot ``image`` and wait for ``expect`` (default ``login:``) on the
    serial console; ``more`` are further :class:`BootSpec` fields."""
    spec = BootSpec(image=Path(image) if image is not None else None, firmware=firmware,
                    timeout=timeout, expect=expect, memory_mb=memory_mb, log_path=log_path,
                    **more)  # type: ignore[arg-type]
    return boot(spec)


def describe_failure(report: BootReport) -> str:
    """One line saying why ``report`` is not ok (empty when it is)."""
    if not report.reached:
        return f"'{report.expect}' not seen on the console ({report.exit_reason})"
    if report.exec_error:
        return f"--exec: {report.exec_error}"
    failed = report.failed_commands
    if failed:
        first = failed[0]
        status = ("did not finish" if first.status is None
                  else f"exited with status {first.status}")
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return f"command {first.command!r} {status}{more}"
    return ""

