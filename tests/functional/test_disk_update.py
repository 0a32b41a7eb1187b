"""A rebuild whose late phases changed updates the kept disk in place, and
the result is the disk a fresh build makes: same files, clean fsck, no trace
of deleted files, and it boots."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import uuid

import pytest

from functional_support import CACHE_DIR, needs_build_host
from test_vm import needs_boot_tools, partitions
from dib.testing.boot import boot_check

pytestmark = [pytest.mark.functional, needs_build_host, needs_boot_tools]

GONE = "deleted-file-marker-" * 400


def stamp_element(builds, text: str, leave_behind: bool) -> None:
    gone = f"printf '%s' '{GONE}' > /etc/stamp-gone\n" if leave_behind else ""
    builds.element("stamp", {
        "README.rst": "x\n", "element-deps": "debian-minimal\n",
        "finalise.d/50-stamp": (
            "#!/bin/bash\nset -eu\n"
            f"echo '{text}' > /etc/stamp\n{gone}"
            f"mkdir -p /opt/stamp-{text}\nln -sfn /etc/stamp /opt/stamp-{text}/link\n"
            "chmod 0640 /etc/stamp\nchown 12:34 /etc/stamp\n"),
    })


def root_fs(raw) -> str:
    table = partitions(raw)
    root = max(table["partitions"], key=lambda p: p["size"])
    return f"{raw}?offset={root['start'] * table.get('sectorsize', 512)}"


def to_raw(qcow2, raw) -> None:
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(qcow2), str(raw)], check=True)


def debugfs(fs: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["debugfs", "-R", command, fs], capture_output=True, text=True)


def contents(fs: str, dest) -> dict[str, tuple]:
    """Type, mode, owner, content digest or link target of every file, read
    back out of the filesystem."""
    dest.mkdir()
    subprocess.run(["debugfs", "-R", f"rdump / {dest}", fs], check=True,
                   capture_output=True)
    out = {}
    for directory, dirs, files in os.walk(dest):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    what = hashlib.sha256(handle.read()).hexdigest()
            else:
                what = ""
            out[os.path.relpath(path, dest)] = (st.st_mode, st.st_uid, st.st_gid, what)
    return out


def test_late_change_updates_the_kept_disk_in_place(builds, tmp_path):
    # Contents never built before, so neither build can come from the output cache.
    run = uuid.uuid4().hex[:8]
    stamp_element(builds, f"one-{run}", leave_behind=True)
    first = builds.run("stamp", "vm", name="inplace")
    assert first.returncode == 0, first.output[-3000:]

    stamp_element(builds, f"two-{run}", leave_behind=False)
    second = builds.run("stamp", "vm", name="inplace")
    assert second.returncode == 0, second.output[-3000:]
    assert "disk image updated in place" in second.output, second.output[-3000:]
    assert second.step("install")["cached"]
    patched = tmp_path / "patched.raw"
    to_raw(second.image.with_suffix(".qcow2"), patched)
    fs = root_fs(patched)

    check = subprocess.run(["e2fsck", "-fn", fs], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert debugfs(fs, "cat /etc/stamp").stdout == f"two-{run}\n"
    assert "File not found" in debugfs(fs, "stat /etc/stamp-gone").stderr
    assert "File not found" in debugfs(fs, f"stat /opt/stamp-one-{run}").stderr
    assert GONE.encode() not in patched.read_bytes()

    # The same tree made into a disk from scratch holds the same files.
    shutil.rmtree(CACHE_DIR / "disks", ignore_errors=True)
    shutil.rmtree(CACHE_DIR / "outputs", ignore_errors=True)
    fresh_build = builds.run("stamp", "vm", name="inplace")
    assert fresh_build.returncode == 0, fresh_build.output[-3000:]
    assert "disk image assembled" in fresh_build.output
    fresh = tmp_path / "fresh.raw"
    to_raw(fresh_build.image.with_suffix(".qcow2"), fresh)
    got, want = contents(fs, tmp_path / "a"), contents(root_fs(fresh), tmp_path / "b")
    differing = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    assert differing == [], differing[:20]

    report = boot_check(second.image.with_suffix(".qcow2"), firmware="bios", timeout=240,
                        expect="login:", log_path=tmp_path / "boot.log")
    assert report.reached, (tmp_path / "boot.log").read_text(errors="replace")[-2000:]
