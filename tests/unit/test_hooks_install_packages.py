"""install-packages (apt) with stub apt-get, dpkg-divert and update-initramfs."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

HOOKS = Path(__file__).resolve().parents[2] / "hooks"

APT_GET = r"""#!/bin/bash
echo "apt-get DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-} INITRD=${INITRD:-} $*" >> "$STUB_LOG"
if grep -q 'runs once when apt is done' "$DIB_UPDATE_INITRAMFS_PATH" 2>/dev/null; then
    echo "initramfs-diverted-during-apt" >> "$STUB_LOG"
fi
for arg in "$@"; do
    case "$arg" in
        linux-image-*) touch "$DIB_INSTALL_PACKAGES_BOOT_DIR/vmlinuz-6.1.0-99-amd64";;
    esac
done
exit ${STUB_APT_RC:-0}
"""

DPKG_DIVERT = r"""#!/bin/bash
echo "dpkg-divert $*" >> "$STUB_LOG"
divert= action= file=
while [ $# -gt 0 ]; do
    case "$1" in
        --divert) divert=$2; shift 2;;
        --add|--remove) action=$1; file=$2; shift 2;;
        *) shift;;
    esac
done
if [ "$action" = --add ] && [ -e "$file" ]; then mv "$file" "$divert"; fi
if [ "$action" = --remove ] && [ -e "$divert" ]; then mv "$divert" "$file"; fi
exit 0
"""

REAL_UPDATE_INITRAMFS = """#!/bin/bash
echo "update-initramfs $*" >> "$STUB_LOG"
if [ -f "$DIB_INSTALL_PACKAGES_ISCSI_NAME" ]; then
    echo "initramfs sees $(tail -n 1 "$DIB_INSTALL_PACKAGES_ISCSI_NAME")" >> "$STUB_LOG"
fi
"""

APT_LIST = """#!/bin/bash
echo "linux-image-amd64/stable 6.1.1 amd64 [upgradable from: 6.1.0]"
"""


@pytest.fixture
def sandbox(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("apt-get", APT_GET), ("dpkg-divert", DPKG_DIVERT), ("apt", APT_LIST)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    sbin = tmp_path / "usr" / "sbin"
    sbin.mkdir(parents=True)
    real = sbin / "update-initramfs"
    real.write_text(REAL_UPDATE_INITRAMFS)
    real.chmod(0o755)
    boot = tmp_path / "boot"
    boot.mkdir()
    mapdir = tmp_path / "pkg-map"
    mapdir.mkdir()
    (mapdir / "base").write_text(json.dumps(
        {"default": {"iscsi_package": "open-iscsi", "gone": "", "two": "a b"}}))
    log = tmp_path / "log"
    env = {
        "PATH": f"{bindir}:{HOOKS}:{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "DIB_UPDATE_INITRAMFS_PATH": str(real),
        "DIB_INSTALL_PACKAGES_BOOT_DIR": str(boot),
        "DIB_INSTALL_PACKAGES_ISCSI_NAME": str(tmp_path / "initiatorname.iscsi"),
        "DIB_DRACUT_KERNEL_HOOK": str(tmp_path / "etc" / "kernel" / "postinst.d" / "dracut"),
        "DIB_PKG_MAP_DIR": str(mapdir),
        "DISTRO_NAME": "debian",
        "DIB_RELEASE": "bookworm",
    }

    class Box:
        pass

    box = Box()
    box.env, box.log, box.boot, box.real = env, log, boot, real

    def run(*args, extra=None):
        e = dict(env)
        e.update(extra or {})
        proc = subprocess.run([str(HOOKS / "install-packages"), *args],
                              capture_output=True, text=True, env=e)
        lines = log.read_text().splitlines() if log.exists() else []
        return proc, lines

    box.run = run
    return box


def apt_calls(lines):
    return [line for line in lines if line.startswith("apt-get")]


def test_install_is_noninteractive_without_recommends(sandbox):
    proc, lines = sandbox.run("curl", "less")
    assert proc.returncode == 0, proc.stderr
    (call,) = apt_calls(lines)
    assert "DEBIAN_FRONTEND=noninteractive" in call
    assert "APT::Install-Recommends=false" in call
    assert "Dpkg::Options::=--force-confold" in call
    assert "--assume-yes" in call
    assert call.endswith("install curl less")


def test_remove(sandbox):
    proc, lines = sandbox.run("-e", "nano")
    assert proc.returncode == 0
    assert apt_calls(lines)[0].endswith("remove nano")


def test_upgrade(sandbox):
    proc, lines = sandbox.run("-u")
    assert proc.returncode == 0
    assert apt_calls(lines)[0].endswith("dist-upgrade")


def test_map_element(sandbox):
    proc, lines = sandbox.run("-m", "base", "iscsi_package", "gone", "two")
    assert proc.returncode == 0, proc.stderr
    assert apt_calls(lines)[0].endswith("install open-iscsi a b")


def test_map_element_failure(sandbox):
    proc, lines = sandbox.run("-m", "base", "unmapped")
    assert proc.returncode == 1
    assert apt_calls(lines) == []


def test_empty_list_runs_nothing(sandbox):
    proc, lines = sandbox.run()
    assert proc.returncode == 0
    assert "empty package list" in proc.stdout
    assert lines == []


def test_dash_d_is_accepted(sandbox):
    proc, lines = sandbox.run("-d", "curl")
    assert proc.returncode == 0, proc.stderr
    assert apt_calls(lines)[0].endswith("install curl")


def test_bad_option(sandbox):
    proc, _ = sandbox.run("-z")
    assert proc.returncode != 0


def test_update_initramfs_diverted_during_apt_and_restored(sandbox):
    proc, lines = sandbox.run("curl")
    assert proc.returncode == 0, proc.stderr
    assert "initramfs-diverted-during-apt" in lines
    assert any("--add" in line for line in lines if line.startswith("dpkg-divert"))
    assert any("--remove" in line for line in lines if line.startswith("dpkg-divert"))
    # The real command is back in place, and nothing needed an initramfs.
    assert sandbox.real.read_text() == REAL_UPDATE_INITRAMFS
    assert not [line for line in lines if line.startswith("update-initramfs")]


def test_new_kernel_gets_initramfs_once(sandbox):
    proc, lines = sandbox.run("linux-image-amd64")
    assert proc.returncode == 0, proc.stderr
    assert [line for line in lines if line.startswith("update-initramfs")] == [
        "update-initramfs -c -k 6.1.0-99-amd64"]


def test_kernel_hooks_are_told_to_leave_the_initramfs_to_the_end(sandbox):
    proc, lines = sandbox.run("linux-image-amd64")
    assert proc.returncode == 0, proc.stderr
    (call,) = apt_calls(lines)
    assert "INITRD=No " in call


def test_with_dracut_the_initramfs_comes_from_its_kernel_hook_once(sandbox):
    """Debian's dracut has no update-initramfs: its kernel hook makes the
    initramfs, once, after apt (not from the kernel's postinst and its
    trigger too)."""
    sandbox.real.unlink()
    hook = Path(sandbox.env["DIB_DRACUT_KERNEL_HOOK"])
    hook.parent.mkdir(parents=True)
    hook.write_text('#!/bin/sh\necho "dracut hook $* INITRD=${INITRD:-}" >> "$STUB_LOG"\n')
    hook.chmod(0o755)
    proc, lines = sandbox.run("linux-image-amd64", "dracut")
    assert proc.returncode == 0, proc.stderr
    boot = sandbox.boot
    assert [line for line in lines if line.startswith("dracut hook")] == [
        f"dracut hook 6.1.0-99-amd64 {boot}/vmlinuz-6.1.0-99-amd64 INITRD="]


def test_kernel_without_initrd_is_fixed_by_any_install(sandbox):
    (sandbox.boot / "vmlinuz-6.1.0-1-amd64").write_text("")
    (sandbox.boot / "vmlinuz-6.1.0-2-amd64").write_text("")
    (sandbox.boot / "initrd.img-6.1.0-2-amd64").write_text("")
    proc, lines = sandbox.run("curl")
    assert [line for line in lines if line.startswith("update-initramfs")] == [
        "update-initramfs -c -k 6.1.0-1-amd64"]


def test_initramfs_package_refreshes_existing_initrd(sandbox):
    (sandbox.boot / "vmlinuz-6.1.0-2-amd64").write_text("")
    (sandbox.boot / "initrd.img-6.1.0-2-amd64").write_text("")
    proc, lines = sandbox.run("busybox")
    assert [line for line in lines if line.startswith("update-initramfs")] == [
        "update-initramfs -u -k 6.1.0-2-amd64"]


def test_upgrade_of_kernel_refreshes_initrd(sandbox):
    (sandbox.boot / "vmlinuz-6.1.0-2-amd64").write_text("")
    (sandbox.boot / "initrd.img-6.1.0-2-amd64").write_text("")
    proc, lines = sandbox.run("-u")
    assert "update-initramfs -u -k 6.1.0-2-amd64" in lines


def test_apt_failure_propagates_and_divert_is_undone(sandbox):
    proc, lines = sandbox.run("curl", extra={"STUB_APT_RC": "100"})
    assert proc.returncode == 100
    assert any("--remove" in line for line in lines if line.startswith("dpkg-divert"))
    assert sandbox.real.read_text() == REAL_UPDATE_INITRAMFS


GENERATED_NAME = "## written by open-iscsi's postinst\nInitiatorName=iqn.1993-08.org.debian:01:1bf91256265e\n"


def test_reproducible_build_leaves_iscsi_name_to_first_boot(sandbox):
    name = Path(sandbox.env["DIB_INSTALL_PACKAGES_ISCSI_NAME"])
    name.write_text(GENERATED_NAME)
    proc, lines = sandbox.run("linux-image-amd64", extra={"SOURCE_DATE_EPOCH": "1700000000"})
    assert proc.returncode == 0, proc.stderr
    assert name.read_text() == "GenerateName=yes\n"
    # the initramfs is made after the name was replaced, so it holds no random name
    assert "initramfs sees GenerateName=yes" in lines


def test_iscsi_name_kept_without_source_date_epoch(sandbox):
    name = Path(sandbox.env["DIB_INSTALL_PACKAGES_ISCSI_NAME"])
    name.write_text(GENERATED_NAME)
    proc, _ = sandbox.run("linux-image-amd64")
    assert proc.returncode == 0, proc.stderr
    assert name.read_text() == GENERATED_NAME
