"""dib boot without booting: the qemu command line, spec checks, sizes, grown
overlays, the serial --exec script and its parser, the console's answer to
GRUB's menu, and the CLI's arguments."""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dib import runner
from dib.cli.main import make_parser
from dib.errors import BootCheckError
from dib.testing import boot, guest
from dib.testing.boot import (DEFAULT_MEMORY_MB, RAMDISK_MEMORY_MB, SERIAL_CONSOLE, BootReport,
                              BootSpec, check_spec, default_memory_mb, describe_failure,
                              grown_overlay, kernel_append, parse_size, qemu_argv)
from dib.testing.guest import ExecResult

GiB = 1024 ** 3


def _values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == option]


def _touch(path: Path, size: int = 16) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


# -- the qemu command line -----------------------------------------------------------


def test_disk_boot_is_snapshot_without_network_by_default(tmp_path):
    argv = qemu_argv(tmp_path / "disk.qcow2", firmware="bios")
    assert "-snapshot" in argv and "-enable-kvm" not in argv
    assert _values(argv, "-accel") == ["tcg"]
    assert _values(argv, "-nic") == ["none"]
    assert _values(argv, "-drive") == [f"file={tmp_path}/disk.qcow2,format=qcow2,if=virtio"]
    assert _values(argv, "-serial") == ["stdio"]
    assert not {"-kernel", "-initrd", "-append", "-smbios", "-netdev"} & set(argv)


def test_ramdisk_boot_has_no_disk_and_a_serial_console(tmp_path):
    argv = qemu_argv(None, firmware="bios", kernel=tmp_path / "vmlinuz",
                     initrd=tmp_path / "initrd", memory_mb=3072)
    assert _values(argv, "-drive") == []
    assert _values(argv, "-kernel") == [f"{tmp_path}/vmlinuz"]
    assert _values(argv, "-initrd") == [f"{tmp_path}/initrd"]
    assert _values(argv, "-append") == [SERIAL_CONSOLE]
    assert _values(argv, "-m") == ["3072"]


def test_external_kernel_for_a_partition_image(tmp_path):
    argv = qemu_argv(tmp_path / "part.raw", firmware="bios", kernel=tmp_path / "k",
                     append="root=LABEL=cloudimg-rootfs ro")
    assert _values(argv, "-drive")[0].startswith(f"file={tmp_path}/part.raw,format=raw")
    assert _values(argv, "-append") == [f"{SERIAL_CONSOLE} root=LABEL=cloudimg-rootfs ro"]
    assert "-initrd" not in argv


@pytest.mark.parametrize("given, expected", [
    (None, SERIAL_CONSOLE),
    ("", SERIAL_CONSOLE),
    ("root=/dev/vda1", f"{SERIAL_CONSOLE} root=/dev/vda1"),
    ("console=ttyS1 root=/dev/vda1", "console=ttyS1 root=/dev/vda1"),
    ("root=/dev/vda1 console=hvc0", "root=/dev/vda1 console=hvc0"),
    ("root=/dev/vda1 netconsole=x", f"{SERIAL_CONSOLE} root=/dev/vda1 netconsole=x"),
])
def test_kernel_append_keeps_a_console_the_user_named(given, expected):
    assert kernel_append(given) == expected


def test_seed_nics_port_forward_credentials_and_exec_channel(tmp_path):
    argv = qemu_argv(tmp_path / "d.qcow2", firmware="bios", seed=tmp_path / "seed.img",
                     nics=2, ssh_port=2222, credentials=[("tmpfiles.extra", "d /run/x\n")],
                     exec_channel=tmp_path / "exec.out")
    drives = _values(argv, "-drive")
    # the image stays the first disk (vda): a root=/dev/vda1 still finds it
    assert drives[0].startswith(f"file={tmp_path}/d.qcow2")
    assert drives[1] == f"file={tmp_path}/seed.img,format=raw,if=virtio,readonly=on"
    assert _values(argv, "-netdev") == ["user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22",
                                        "user,id=net1"]
    assert _values(argv, "-device") == ["virtio-net-pci,netdev=net0",
                                        "virtio-net-pci,netdev=net1"]
    assert "-nic" not in argv
    assert _values(argv, "-serial") == ["stdio", f"file:{tmp_path}/exec.out"]
    (smbios,) = _values(argv, "-smbios")
    prefix = "type=11,value=io.systemd.credential.binary:tmpfiles.extra="
    assert smbios.startswith(prefix)
    assert base64.b64decode(smbios[len(prefix):]) == b"d /run/x\n"


def test_commas_in_paths_are_doubled_for_qemu(tmp_path):
    argv = qemu_argv(tmp_path / "a,b.qcow2", firmware="bios", exec_channel=tmp_path / "x,y")
    assert _values(argv, "-drive")[0].startswith(f"file={tmp_path}/a,,b.qcow2,format=")
    assert _values(argv, "-serial")[1] == f"file:{tmp_path}/x,,y"


# -- checks before qemu starts -----------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    (lambda f: {"image": None}, "nothing to boot"),
    (lambda f: {"image": f["dir"] / "missing.qcow2"}, "missing.qcow2 does not exist"),
    (lambda f: {"kernel": f["dir"] / "vmlinuz"}, "--kernel .*/vmlinuz does not exist"),
    (lambda f: {"initrd": f["initrd"]}, "--initrd and --append need --kernel"),
    (lambda f: {"append": "root=/dev/vda"}, "--initrd and --append need --kernel"),
    (lambda f: {"image": None, "kernel": f["kernel"], "grow": GiB}, "--grow needs an IMAGE"),
    (lambda f: {"nics": 9}, "--nics 9"),
    (lambda f: {"nics": -1}, "--nics -1"),
    (lambda f: {"firmware": "coreboot"}, "unknown firmware"),
    (lambda f: {"login": "telnet", "exec": ["true"]}, "unknown login method"),
    (lambda f: {"seed": {"meta-data": f["ud"]}}, "--seed needs a user-data file"),
    (lambda f: {"seed": {"user-data": f["dir"] / "nope"}}, "user-data file .*nope does not"),
    (lambda f: {"seed": {"user-data": f["ud"], "vendor-data": f["ud"]}}, "unknown seed file"),
    (lambda f: {"memory_mb": 16}, "too little"),
])
def test_bad_specs_are_refused_with_what_is_wrong(tmp_path, changes, message):
    files = {name: _touch(tmp_path / name) for name in ("image", "kernel", "initrd", "ud")}
    files["dir"] = tmp_path
    fields = {"image": files["image"], **changes(files)}
    with pytest.raises(BootCheckError, match=message):
        check_spec(BootSpec(**fields))


def test_a_good_spec_passes(tmp_path):
    check_spec(BootSpec(image=_touch(tmp_path / "disk.raw"), kernel=_touch(tmp_path / "k"),
                        initrd=_touch(tmp_path / "i"), append="root=/dev/vda", nics=2,
                        grow=4 * GiB, seed={"user-data": _touch(tmp_path / "ud")},
                        exec=["true"], login="ssh"))


@pytest.mark.parametrize("text, bare, expected", [
    ("2G", "", 2 * GiB), ("2GiB", "", 2 * GiB), ("2gb", "", 2 * GiB),
    ("1.5G", "", 3 * GiB // 2), ("3072", "M", 3072 * 1024 ** 2), ("512M", "M", 512 * 1024 ** 2),
    ("4", "G", 4 * GiB), ("1T", "", 1024 * GiB),
])
def test_sizes_read_as_qemu_reads_them(text, bare, expected):
    assert parse_size(text, what="--grow", bare_unit=bare) == expected


@pytest.mark.parametrize("text", ["", "G", "2X", "-1G", "two"])
def test_bad_sizes_name_the_option(text):
    with pytest.raises(BootCheckError, match="--memory: invalid size"):
        parse_size(text, what="--memory")


def test_memory_defaults_to_more_for_a_big_ramdisk(tmp_path):
    kernel = _touch(tmp_path / "k")
    big = _touch(tmp_path / "big.initrd", 65 * 1024 ** 2)
    small = _touch(tmp_path / "small.initrd", 1024 ** 2)
    assert default_memory_mb(BootSpec(kernel=kernel, initrd=big)) == RAMDISK_MEMORY_MB
    assert default_memory_mb(BootSpec(kernel=kernel, initrd=small)) == DEFAULT_MEMORY_MB
    assert default_memory_mb(BootSpec(image=big, kernel=kernel, initrd=big)) == \
        DEFAULT_MEMORY_MB
    assert default_memory_mb(BootSpec(kernel=kernel, initrd=big, memory_mb=512)) == 512


# -- --grow ------------------------------------------------------------------------------


needs_qemu_img = pytest.mark.skipif(runner.which("qemu-img") is None,
                                    reason="qemu-img is not installed (qemu-utils)")


@needs_qemu_img
def test_grown_overlay_is_bigger_and_leaves_the_image_alone(tmp_path):
    image = _touch(tmp_path / "disk.raw", 8 * 1024 ** 2)
    image.write_bytes(b"payload" + bytes(8 * 1024 ** 2 - 7))
    before = image.stat()
    overlay = grown_overlay(image, 64 * 1024 ** 2, tmp_path)
    info = json.loads(runner.run(["qemu-img", "info", "--output=json", str(overlay)]).stdout)
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 64 * 1024 ** 2
    assert info["backing-filename"] == str(image.resolve())
    assert info["backing-filename-format"] == "raw"
    after = image.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@needs_qemu_img
def test_grow_smaller_than_the_image_is_refused(tmp_path):
    image = _touch(tmp_path / "disk.raw", 8 * 1024 ** 2)
    with pytest.raises(BootCheckError, match="smaller than"):
        grown_overlay(image, 4 * 1024 ** 2, tmp_path)
    assert not (tmp_path / "grown.qcow2").exists()


# -- the serial --exec login ----------------------------------------------------------


COMMANDS = ["echo hello; echo to-stderr >&2",
            "exit 7",
            "printf '100%% \\\\ done\\n'; printf 'dib-exec-n end 0 0\\n'",
            "head -c 3 /dev/zero | tr '\\0' '\\377'",
            "cat; echo read-nothing"]


def test_exec_script_runs_the_commands_and_the_parser_reads_them(tmp_path):
    channel = tmp_path / "ttyS1"
    script = guest.exec_script(COMMANDS, "dib-exec-n", settle=0, tty=str(channel))
    shown = subprocess.run(["sh", "-c", script], env={"HOME": str(tmp_path),
                                                     "PATH": os.environ["PATH"]},
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=30)
    assert shown.stdout == "dib-exec-n start\ndib-exec-n done\n"
    out = guest.parse_exec_output(channel.read_bytes(), COMMANDS, "dib-exec-n")
    assert out.done and out.state == "unknown"
    assert [(r.status, r.output) for r in out.results] == [
        (0, "hello\nto-stderr\n"),
        (7, ""),
        (0, "100% \\ done\ndib-exec-n end 0 0\n"),
        (0, "\ufffd\ufffd\ufffd"),
        (0, "read-nothing\n"),
    ]


def test_parser_marks_commands_that_never_finished():
    data = (b"n state running\r\nn begin 0\r\n" + base64.b64encode(b"ok\n") +
            b"\r\nn end 0 0\r\nn begin 1\r\nb3V0\r\n")
    out = guest.parse_exec_output(data, ["first", "second", "third"], "n")
    assert not out.done and out.state == "running"
    assert [(r.command, r.status, r.output) for r in out.results] == [
        ("first", 0, "ok\n"), ("second", None, ""), ("third", None, "")]


needs_tmpfiles = pytest.mark.skipif(
    runner.which("systemd-tmpfiles") is None or os.geteuid() != 0,
    reason="needs systemd-tmpfiles and root (its lines make root-owned files)")


@needs_tmpfiles
def test_systemd_tmpfiles_writes_the_script_and_the_login(tmp_path):
    """The credential is read by the real systemd-tmpfiles: escapes and
    specifiers must come out as the script we meant."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "run").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    config = tmp_path / "extra.conf"
    config.write_text(guest.serial_login_tmpfiles(COMMANDS, "dib-exec-n", settle=60))
    runner.run(["systemd-tmpfiles", "--create", f"--root={root}", str(config)])
    profile = root / guest.EXEC_HOME.lstrip("/") / ".profile"
    assert profile.read_text() == guest.exec_script(COMMANDS, "dib-exec-n", settle=60)
    assert oct(profile.stat().st_mode & 0o777) == "0o600"
    assert (root / "etc/passwd").read_text().splitlines() == [
        "root:x:0:0:root:/root:/bin/bash",
        f"{guest.EXEC_USER}::0:0:dib boot --exec:{guest.EXEC_HOME}:/bin/sh"]


def test_remote_command_quotes_for_the_guest_shell():
    command = guest.remote_command("echo 'a b' \"$HOME\"; exit 3")
    ran = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                         env={"HOME": "/h", "PATH": os.environ["PATH"]})
    assert (ran.returncode, ran.stdout) == (3, "a b /h\n")


# -- reports and the CLI ----------------------------------------------------------------


def _report(**changes) -> BootReport:
    fields = dict(image=Path("x.qcow2"), firmware="bios", expect="login:", reached=True,
                  seconds=1.0, login="serial")
    fields.update(changes)
    return BootReport(**fields)


def test_report_names_the_failed_command():
    report = _report(exec_results=[ExecResult("true", 0, ""), ExecResult("false", 1, ""),
                                   ExecResult("sleep 999", None, "")])
    assert not report.ok
    assert describe_failure(report) == "command 'false' exited with status 1 (and 1 more)"
    assert report.to_dict()["exec"][1] == {"command": "false", "status": 1, "output": ""}
    assert _report(exec_results=[ExecResult("true", 0, "")]).ok
    assert describe_failure(_report(reached=False, exit_reason="timeout")) == \
        "'login:' not seen on the console (timeout)"


def _args(*argv: str):
    return make_parser().parse_args(["boot", *argv])


def test_cli_builds_the_spec(tmp_path):
    from dib.cli.boot import spec_from_args
    spec = spec_from_args(_args("img.qcow2", "--memory", "3G", "--grow", "4G", "--nic2",
                                "--seed", "ud,md", "--exec", "uname -r", "--exec", "true",
                                "--login", "ssh", "--ssh-key", "k"))
    assert (spec.memory_mb, spec.grow, spec.nics) == (3072, 4 * GiB, 2)
    assert spec.seed == {"user-data": Path("ud"), "meta-data": Path("md")}
    assert list(spec.exec) == ["uname -r", "true"] and spec.login == "ssh"
    ramdisk = spec_from_args(_args("--kernel", "k", "--initrd", "i", "--memory", "2048"))
    assert ramdisk.image is None and ramdisk.memory_mb == 2048
    assert spec_from_args(_args("img", "--nics", "3")).nics == 3


@pytest.mark.parametrize("argv, message", [
    (["img", "--seed", "a,b,c"], "--seed 'a,b,c'"),
    (["img", "--seed", ",md"], "--seed ',md'"),
    (["img", "--ssh-key", "k"], "--ssh-key is for --login ssh"),
    (["img", "--grow", "big"], "--grow: invalid size"),
])
def test_cli_argument_errors(argv, message):
    from dib.cli.boot import spec_from_args
    with pytest.raises(BootCheckError, match=message):
        spec_from_args(_args(*argv))


# A stand-in for a guest's serial console: GRUB's menu, then a countdown
# that Enter cuts short, then the kernel and the login prompt.
FAKE_GRUB = r'''
import select, sys, time
sys.stdout.write("GNU GRUB  version 2.06\r\n      Press enter to boot the selected OS, "
                 "`e' to edit the commands\r\n")
sys.stdout.flush()
ready, _, _ = select.select([sys.stdin], [], [], 3.0)
key = sys.stdin.buffer.read(1) if ready else b""
chosen = "enter" if key == b"\r" else "countdown"
sys.stdout.write("entry chosen by " + chosen + "\r\n")
sys.stdout.write("Linux version 6.1\r\nWelcome to Debian\r\nlogin: ")
sys.stdout.flush()
time.sleep(5)
'''


@pytest.mark.parametrize("answer, chosen_by", [(True, "enter"), (False, "countdown")])
def test_grub_menu_is_answered_with_enter_unless_asked_to_wait(answer, chosen_by):
    started = time.monotonic()
    with runner.spawn([sys.executable, "-c", FAKE_GRUB], stdin=subprocess.PIPE,
                      what="fake console") as console_process:
        console = boot._Console(console_process, [("login:", b"login:")], None, started,
                                answer_menu=answer)
        assert console.wait_milestone("login:", started + 20)
        assert console.wait_for([b"entry chosen by " + chosen_by.encode()], started + 20)
        console_process.kill()
    console.join()
    assert (boot.MENU_ANSWERED in console.milestones) == answer


FAKE_CRASHING_QEMU = r'''
import os, signal, sys
first = not os.path.exists(sys.argv[1])
open(sys.argv[1], "a").close()
sys.stdout.write("SeaBIOS\r\n")
sys.stdout.flush()
if first:
    os.kill(os.getpid(), signal.SIGSEGV)
sys.stdout.write("Linux version 6.1\r\nlogin: ")
sys.stdout.flush()
'''


def _fake_boot(tmp_path, program):
    spec = boot.BootSpec(timeout=20, log_path=tmp_path / "console.log")
    report = boot.BootReport(image=None, firmware="bios", expect="login:", reached=False,
                             seconds=0.0)
    argv = [sys.executable, "-c", program, str(tmp_path / "started")]
    boot._run_restarting_a_crashed_qemu(argv, spec, None, report)
    return report


def test_a_qemu_that_crashes_before_the_marker_is_started_once_more(tmp_path):
    report = _fake_boot(tmp_path, FAKE_CRASHING_QEMU)
    assert report.reached and report.ok
    assert report.restarted_after == f"qemu exited with status -{int(signal.SIGSEGV)}"
    assert report.to_dict()["restarted_after"] == report.restarted_after
    log = (tmp_path / "console.log").read_text()
    # both consoles are kept, the first one's end marked
    assert log.count("SeaBIOS") == 2 and "qemu started again" in log


def test_a_qemu_that_exits_by_itself_is_not_started_again(tmp_path):
    report = _fake_boot(tmp_path, "import sys; sys.stdout.write('SeaBIOS\\r\\n'); sys.exit(3)")
    assert not report.reached
    assert report.exit_reason == "qemu exited with status 3"
    assert report.restarted_after == ""
