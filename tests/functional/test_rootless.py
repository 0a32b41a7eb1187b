"""Rootless builds, as an ordinary user would make them.

As root, each test creates a user with subordinate ids (and deletes it
after). As that user: a command run through dib.runtime.userns, and what it
could do and left on disk; a debian-minimal vm build compared with the same
build as root, and its disk booted; every shipped element's hook unit tests;
a layout a user namespace cannot build, refused before any work.
"""
from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from functional_support import missing_for_builds
from test_vm import boot_tools_missing
from dib.testing.boot import boot_check
from dib.runtime.userns import (SUBGID_FILE, SUBORDINATE_IDS, SUBUID_FILE, add_subids_command,
                                available_ids, ranges_for, read_subids)

pytestmark = pytest.mark.functional
ROOT = Path(__file__).resolve().parents[2]
# The same time stamp for both builds, so that their trees can be compared.
EPOCH = "1700000000"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "creating a user with subordinate ids needs root"
    for tool, package in (("useradd", "passwd"), ("userdel", "passwd"), ("usermod", "passwd"),
                          ("runuser", "util-linux"), ("newuidmap", "uidmap")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    return None


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    python: str


def _python_for(name: str) -> str | None:
    """A Python 3 the user may run: ours, unless it lives in root's home."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run(["runuser", "-u", name, "--", candidate, "-c",
                                "import sys; print(sys.version_info >= (3, 11))"],
                               capture_output=True, text=True)
        if probe.stdout.strip() == "True":
            return candidate
    return None


@pytest.fixture
def rootless_user():
    name = f"dibrl{os.getpid()}"
    # usermod wants the id files to exist; a host without them has none after.
    absent = [path for path in (SUBUID_FILE, SUBGID_FILE) if not path.exists()]
    for path in absent:
        path.touch(mode=0o644)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", "--user-group", name],
                   check=True)
    try:
        account = pwd.getpwnam(name)
        # useradd gives a new user subordinate ids itself where login.defs
        # says so; add them where it did not.
        uid_ranges, gid_ranges = read_subids(SUBUID_FILE), read_subids(SUBGID_FILE)
        if min(available_ids(account.pw_uid, ranges_for(uid_ranges, name, account.pw_uid)),
               available_ids(account.pw_gid, ranges_for(gid_ranges, name, account.pw_uid))
               ) < SUBORDINATE_IDS:
            subprocess.run(add_subids_command(name, uid_ranges, gid_ranges).split(), check=True)
        python = _python_for(name)
        if python is None:
            pytest.skip(f"no Python 3.11 that user {name} may run")
        yield User(name, account.pw_uid, account.pw_gid, python)
    finally:
        # userdel takes the user's subordinate id lines too.
        subprocess.run(["userdel", name], check=True)
        for path in absent:
            if path.exists() and not read_subids(path):
                path.unlink()
                Path(f"{path}-").unlink(missing_ok=True)     # the backup usermod made


@pytest.fixture
def scratch(rootless_user):
    # Not under pytest's tmp_path: root's, behind directories only root may enter.
    path = Path(tempfile.mkdtemp(prefix="dib-rootless-", dir="/var/tmp"))
    os.chown(path, rootless_user.uid, rootless_user.gid)
    yield path
    shutil.rmtree(path)


INSIDE = r"""
set -eu
dir=$1
id -u > "$dir/uid"
id -g > "$dir/gid"
touch "$dir/owned"
chown 1000:1000 "$dir/owned"
mkdir "$dir/lower" "$dir/upper" "$dir/work" "$dir/merged"
echo from-lower > "$dir/lower/file"
mount -t overlay overlay -o "lowerdir=$dir/lower,upperdir=$dir/upper,workdir=$dir/work" \
    "$dir/merged"
cat "$dir/merged/file" > "$dir/seen-through-overlay"
echo through-overlay > "$dir/merged/new"
mkdir "$dir/theirs"
touch "$dir/theirs/file"
chown -R 1000:1000 "$dir/theirs"
chmod 700 "$dir/theirs"
"""

AS_USER = """
import os, sys
from dib.runtime.userns import id_map, remove_tree, run_in_userns
status = run_in_userns(["sh", "-c", sys.argv[1], "sh", sys.argv[2]], id_map(),
                       what="a command in a user namespace")
# What belongs to a subordinate id, the user cannot remove itself.
theirs = os.path.join(sys.argv[2], "theirs")
assert os.stat(theirs).st_uid != os.getuid()
try:
    os.unlink(os.path.join(theirs, "file"))
    raise AssertionError("removed a subordinate id's file from outside")
except PermissionError:
    pass
remove_tree(theirs)
sys.exit(status or os.path.exists(theirs))
"""


def _clean_env(home: Path, **extra: str) -> list[str]:
    """``env -i`` arguments for a clean environment that finds this checkout
    and its dependencies (not root's home, which the user cannot read)."""
    path = os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])
    base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": path, "HOME": str(home), "LANG": "C.UTF-8"}
    return ["env", "-i", *(f"{k}={v}" for k, v in {**base, **extra}.items())]


def _as_user(user: User, scratch: Path, *argv: str,
             timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user.name, "--", *_clean_env(scratch), *argv],
                          capture_output=True, text=True, cwd=scratch, timeout=timeout)


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_a_user_with_subordinate_ids_is_root_in_its_namespace(rootless_user, scratch):
    result = _as_user(rootless_user, scratch, rootless_user.python, "-c", AS_USER, INSIDE,
                      str(scratch))
    assert result.returncode == 0, result.stderr
    assert (scratch / "uid").read_text() == "0\n"
    assert (scratch / "gid").read_text() == "0\n"
    # Inside uid 0 is the user; inside 1000 is its first subordinate id + 999.
    first_uid = ranges_for(read_subids(SUBUID_FILE), rootless_user.name, rootless_user.uid)[0]
    first_gid = ranges_for(read_subids(SUBGID_FILE), rootless_user.name, rootless_user.uid)[0]
    assert (scratch / "uid").stat().st_uid == rootless_user.uid
    owned = (scratch / "owned").stat()
    assert (owned.st_uid, owned.st_gid) == (first_uid.start + 999, first_gid.start + 999)
    # The overlay worked, and its mount stayed in the namespace.
    assert (scratch / "seen-through-overlay").read_text() == "from-lower\n"
    assert (scratch / "upper" / "new").read_text() == "through-overlay\n"
    assert list((scratch / "merged").iterdir()) == []
    # remove_tree took the subordinate id's directory.
    assert not (scratch / "theirs").exists()
    with open("/proc/self/mountinfo") as handle:
        assert str(scratch) not in handle.read()


def _listing(tar: Path) -> dict[str, tuple]:
    """Each member: type, mode, owner, group, size, content digest, link
    target, device numbers, xattrs."""
    found = {}
    with tarfile.open(tar) as archive:
        for member in archive:
            digest = ""
            if member.isfile():
                digest = hashlib.sha256(archive.extractfile(member).read()).hexdigest()
            xattrs = sorted((k, v) for k, v in member.pax_headers.items()
                            if k.startswith("SCHILY.xattr."))
            found[member.name] = (member.type, member.mode, member.uid, member.gid, member.size,
                                  digest, member.linkname, member.devmajor, member.devminor,
                                  tuple(xattrs))
    return found


# The build's own record of its command line and environment (output paths).
def _compared(listing: dict[str, tuple]) -> dict[str, tuple]:
    return {name: entry for name, entry in listing.items()
            if not name.startswith("./etc/dib-manifests/")}


def _missing_for_vm() -> str | None:
    return _missing() or missing_for_builds() or boot_tools_missing()


@pytest.mark.skipif(_missing_for_vm() is not None, reason=_missing_for_vm() or "")
def test_a_rootless_build_makes_the_image_a_root_build_makes(rootless_user, scratch, tmp_path):
    # An element of DIB's kind: a hook on the host that calls sudo.
    hook = scratch / "elements" / "uses-sudo" / "extra-data.d" / "50-uses-sudo"
    hook.parent.mkdir(parents=True)
    hook.write_text('#!/bin/bash\nset -eu -o pipefail\n'
                    'sudo -E install -d -m 0750 "$TARGET_ROOT/etc/made-with-sudo"\n')
    hook.chmod(0o755)

    # Both cold, in the same environment (hooks see the caller's), at once.
    def start(directory: Path, user: list[str]) -> subprocess.Popen:
        directory.mkdir()
        if user:
            os.chown(directory, rootless_user.uid, rootless_user.gid)
        env = _clean_env(scratch, SOURCE_DATE_EPOCH=EPOCH,
                         ELEMENTS_PATH=str(scratch / "elements"))
        argv = [*user, *env, rootless_user.python,
                "-m", "dib.cli.dic", "-o", str(directory / "image"),
                "--workdir", str(directory / "work"), "--cache-dir", str(directory / "cache"),
                "-t", "tar,qcow2", "debian-minimal", "vm", "uses-sudo"]
        return subprocess.Popen(argv, cwd=directory, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    builds = {"rootless": start(scratch / "rootless", ["runuser", "-u", rootless_user.name, "--"]),
              "root": start(tmp_path / "root", [])}
    outputs = {name: build.communicate(timeout=1500)[0] for name, build in builds.items()}
    for name, build in builds.items():
        assert build.returncode == 0, f"{name} build:\n{outputs[name][-3000:]}"
    rootless = _listing(scratch / "rootless" / "image.tar")
    assert _compared(rootless) == _compared(_listing(tmp_path / "root" / "image.tar"))
    # Spelled out, what the comparison covers: ids and modes as root makes them.
    shadow = rootless["./etc/shadow"]
    assert (shadow[1], shadow[2], shadow[3]) == (0o640, 0, 42)
    assert rootless["./usr/bin/passwd"][1] & 0o4000
    assert rootless["./etc/made-with-sudo"][:4] == (tarfile.DIRTYPE, 0o750, 0, 0)
    # /dev as a root bootstrap leaves it, though mknod is refused in the namespace
    assert rootless["./dev/null"][:4] == (tarfile.CHRTYPE, 0o666, 0, 0)
    assert rootless["./dev/null"][7:9] == (1, 3)
    assert not any(key.startswith("SCHILY.xattr.user.overlay.")
                   for entry in rootless.values() for key, _value in entry[9])
    # The workspace went, files of subordinate ids included.
    assert list((scratch / "rootless" / "work").glob("dib-build-*")) == []
    # The disk made without root (mkfs -d from a tree of mapped ids, GRUB
    # written by dib) boots.
    log = tmp_path / "boot.log"
    report = boot_check(scratch / "rootless" / "image.qcow2", firmware="bios", timeout=240,
                        log_path=log)
    assert report.reached, log.read_text(errors="replace")[-2000:]


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_the_hook_unit_tests_pass_as_an_ordinary_user(rootless_user, scratch):
    results = scratch / "unit.json"
    run = _as_user(rootless_user, scratch, rootless_user.python, "-m", "dib.cli.main", "test",
                   "--unit", "--all", "--json", str(results), timeout=1200)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    # Every shipped element with tests ran, and none was skipped.
    shipped = sorted(path.parent.name for path in (ROOT / "elements").glob("*/tests")
                     if path.is_dir())
    ran = json.loads(results.read_text())["results"]
    assert sorted(r["element"] for r in ran) == shipped
    assert {r["status"] for r in ran} == {"pass"}


LVM_LAYOUT = """
- local_loop: {name: image0}
- partitioning:
    base: image0
    label: mbr
    partitions:
      - {name: root, size: 100%}
- lvm:
    name: lvm
    pvs: [{name: pv, base: root}]
    vgs: [{name: vg, base: [pv]}]
    lvs: [{name: lv_root, base: vg, size: 2GiB}]
- mkfs: {name: mkfs_root, base: lv_root, type: ext4, mount: {mount_point: /}}
"""


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_a_layout_a_user_namespace_cannot_build_stops_before_any_work(rootless_user, scratch):
    env = _clean_env(scratch, DIB_BLOCK_DEVICE_CONFIG=LVM_LAYOUT)
    started = time.monotonic()
    run = subprocess.run(["runuser", "-u", rootless_user.name, "--", *env, rootless_user.python,
                          "-m", "dib.cli.dic", "-o", str(scratch / "image"),
                          "--workdir", str(scratch / "work"), "-t", "qcow2",
                          "debian-minimal", "vm"],
                         capture_output=True, text=True, cwd=scratch, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "block-device config from DIB_BLOCK_DEVICE_CONFIG" in output
    assert "lvm node 'lvm' needs device-mapper" in output
    assert "Traceback" not in output
    assert time.monotonic() - started < 30
    assert not (scratch / "work").exists() or not any((scratch / "work").iterdir())
