"""The user namespace of a rootless build, as an ordinary user would get it.

As root, the test creates a user with subordinate ids (and deletes it after);
as that user it runs a command through dib.runtime.userns and checks what the
command could do and what it left on disk.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from dib.runtime.userns import (SUBGID_FILE, SUBORDINATE_IDS, SUBUID_FILE, add_subids_command,
                                available_ids, ranges_for, read_subids)

pytestmark = pytest.mark.functional
ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_a_user_with_subordinate_ids_is_root_in_its_namespace(rootless_user, scratch):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "PYTHONPATH": str(ROOT),
           "HOME": str(scratch), "LANG": "C.UTF-8"}
    result = subprocess.run(["runuser", "-u", rootless_user.name, "--",
                             "env", "-i", *(f"{k}={v}" for k, v in env.items()),
                             rootless_user.python, "-c", AS_USER, INSIDE, str(scratch)],
                            capture_output=True, text=True, cwd=scratch, timeout=120)
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
