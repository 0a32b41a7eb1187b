"""The /dev entries the outputs of a build without root add (dib.runtime.devnodes)."""
import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dib import outputs, runner
from dib.blockdev import CannotPatch, assemble, layout
from dib.blockdev.graph import load_config
from dib.errors import BlockDeviceError
from dib.outputs import archives
from dib.runtime import devnodes

from tests.unit.test_blockdev_config import GRAPH

EPOCH = 1700000000
SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"
# name → (tar type, mode, major, minor, link target), as a root bootstrap leaves them
EXPECTED = {
    "console": (tarfile.CHRTYPE, 0o666, 5, 1, ""), "fd": (tarfile.SYMTYPE, 0o777, 0, 0,
                                                          "/proc/self/fd"),
    "full": (tarfile.CHRTYPE, 0o666, 1, 7, ""), "null": (tarfile.CHRTYPE, 0o666, 1, 3, ""),
    "ptmx": (tarfile.CHRTYPE, 0o666, 5, 2, ""), "pts": (tarfile.DIRTYPE, 0o755, 0, 0, ""),
    "random": (tarfile.CHRTYPE, 0o666, 1, 8, ""), "shm": (tarfile.DIRTYPE, 0o755, 0, 0, ""),
    "stderr": (tarfile.SYMTYPE, 0o777, 0, 0, "/proc/self/fd/2"),
    "stdin": (tarfile.SYMTYPE, 0o777, 0, 0, "/proc/self/fd/0"),
    "stdout": (tarfile.SYMTYPE, 0o777, 0, 0, "/proc/self/fd/1"),
    "tty": (tarfile.CHRTYPE, 0o666, 5, 0, ""), "urandom": (tarfile.CHRTYPE, 0o666, 1, 9, ""),
    "zero": (tarfile.CHRTYPE, 0o666, 1, 5, ""),
}


def _tree(tmp_path: Path, name: str = "tree") -> Path:
    """A small tree whose /dev is what a rootless bootstrap leaves: empty."""
    tree = tmp_path / name
    for directory in ("boot/grub", "dev", "etc", "proc"):
        (tree / directory).mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("box\n")
    (tree / "boot" / "grub" / "grub.cfg").write_text("set timeout=1\n")
    _settle_times(tree)
    return tree


def _settle_times(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)


def _tar_dev(path: Path) -> dict[str, tuple]:
    """What is below /dev in a tar: type, mode, device numbers, link, owner."""
    with tarfile.open(path) as tar:
        return {m.name.removeprefix("./dev/"): (m.type, m.mode, m.devmajor, m.devminor,
                                                m.linkname, m.uid, m.gid)
                for m in tar if m.name.startswith("./dev/")}


IN_TAR = {name: (*fields, 0, 0) for name, fields in EXPECTED.items()}


# --- which entries -------------------------------------------------------------

def test_the_entries_are_what_the_tree_lacks_with_the_time_of_its_dev(tmp_path):
    tree = _tree(tmp_path)
    (tree / "dev" / "null").write_text("")          # whatever is there stays
    (tree / "dev" / "pts").mkdir()
    (tree / "dev" / "fd").symlink_to("/nowhere")    # a dangling link is there too
    os.utime(tree / "dev", (EPOCH, EPOCH + 5))
    found = devnodes.missing(tree)
    assert [e.path for e in found] == sorted(f"dev/{n}" for n in EXPECTED
                                             if n not in ("null", "pts", "fd"))
    assert {(e.mtime, e.uid, e.gid) for e in found} == {(EPOCH + 5, 0, 0)}


def test_the_entries_are_no_later_than_source_date_epoch(tmp_path):
    tree = _tree(tmp_path)
    os.utime(tree / "dev", (EPOCH, EPOCH + 5))
    assert {e.mtime for e in devnodes.missing(tree, epoch=EPOCH)} == {EPOCH}
    os.utime(tree / "dev", (EPOCH, EPOCH - 5))
    assert {e.mtime for e in devnodes.missing(tree, epoch=EPOCH)} == {EPOCH - 5}


def test_a_tree_without_a_dev_directory_gets_no_entries(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    assert devnodes.missing(tree) == ()
    (tmp_path / "elsewhere").mkdir()
    (tree / "dev").symlink_to(tmp_path / "elsewhere")
    assert devnodes.missing(tree) == ()


def test_the_signature_changes_with_the_entries():
    changed = tuple(n if n.name != "console" else devnodes.Node("console", devnodes.CHAR,
                                                                 0o600, 5, 1)
                    for n in devnodes.BOOTSTRAP)
    assert devnodes.signature(changed) != devnodes.signature()
    assert devnodes.signature() == devnodes.signature(tuple(devnodes.BOOTSTRAP))


# --- tar, tgz, docker ----------------------------------------------------------

def test_tar_holds_the_entries_where_gnu_tar_sorts_them(tmp_path):
    tree = _tree(tmp_path)
    (tree / "dev" / "mqueue").mkdir()                # an entry the tree has, between others
    (tree / "dev" / "mqueue" / "q").write_text("")
    _settle_times(tree)
    ctx = outputs.OutputContext(image_name=tmp_path / "img", tree=tree,
                                source_date_epoch=EPOCH, dev_nodes=devnodes.missing(tree))
    (path,) = archives.Tar().produce(ctx)
    got = _tar_dev(path)
    assert {name: got[name] for name in EXPECTED} == IN_TAR
    assert set(got) == {*EXPECTED, "mqueue", "mqueue/q"}
    # GNU tar's own order for a tree that holds every name (of any type)
    model = _tree(tmp_path, "model")
    shutil.copytree(tree / "dev" / "mqueue", model / "dev" / "mqueue")
    for name in EXPECTED:
        (model / "dev" / name).touch()
    runner.run(archives.tar_argv(model, tmp_path / "model.tar"))
    with tarfile.open(path) as got, tarfile.open(tmp_path / "model.tar") as want:
        assert got.getnames() == want.getnames()
    # ended as GNU tar ends an archive, and GNU tar reads it without a word
    assert path.stat().st_size % (20 * 512) == 0
    listing = runner.run(["tar", "-tvf", str(path)])
    assert listing.stderr == "" and "./etc/hostname" in listing.stdout


def test_tar_entries_are_the_bytes_gnu_tar_writes_for_real_nodes(tmp_path):
    """A tree given its nodes by mknod (root only) and the same tree given
    them by the output make the same archive."""
    tree = _tree(tmp_path)
    real = _tree(tmp_path, "real")
    try:
        for node in devnodes.BOOTSTRAP:
            where = real / "dev" / node.name
            if node.kind == devnodes.CHAR:
                os.mknod(where, stat.S_IFCHR | node.mode, os.makedev(node.major, node.minor))
                os.chmod(where, node.mode)
            elif node.kind == devnodes.LINK:
                where.symlink_to(node.target)
            else:
                where.mkdir(mode=node.mode)
    except PermissionError:
        pytest.skip("mknod needs root")
    _settle_times(real)
    archives.Tar().produce(outputs.OutputContext(image_name=tmp_path / "real", tree=real,
                                                 source_date_epoch=EPOCH))
    ctx = outputs.OutputContext(image_name=tmp_path / "added", tree=tree,
                                source_date_epoch=EPOCH, dev_nodes=devnodes.missing(tree))
    (added,) = archives.Tar().produce(ctx)
    assert added.read_bytes() == (tmp_path / "real.tar").read_bytes()


def test_tgz_and_docker_layer_hold_the_entries(tmp_path):
    tree = _tree(tmp_path)
    ctx = outputs.OutputContext(image_name=tmp_path / "img", tree=tree, source_date_epoch=EPOCH,
                                dev_nodes=devnodes.missing(tree), docker_target="dib/dev:1")
    (tgz,) = archives.Tgz().produce(ctx)
    (tmp_path / "unpacked.tar").write_bytes(gzip.decompress(tgz.read_bytes()))
    assert _tar_dev(tmp_path / "unpacked.tar") == IN_TAR
    (docker,) = archives.Docker().produce(ctx)
    with tarfile.open(docker) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        (tmp_path / "layer.tar").write_bytes(
            outer.extractfile(manifest[0]["Layers"][0]).read())
    assert _tar_dev(tmp_path / "layer.tar") == IN_TAR
    assert not list(tmp_path.glob("*.dev"))


def test_a_tar_without_the_dev_directory_is_an_error(tmp_path):
    tree = _tree(tmp_path)
    entries = devnodes.missing(tree)
    (tree / "dev").rmdir()
    ctx = outputs.OutputContext(image_name=tmp_path / "img", tree=tree, dev_nodes=entries)
    with pytest.raises(outputs.base.OutputError, match="no member ./dev/"):
        archives.Tar().produce(ctx)


def test_without_entries_the_tar_is_what_gnu_tar_wrote(tmp_path):
    tree = _tree(tmp_path)
    (path,) = archives.Tar().produce(outputs.OutputContext(image_name=tmp_path / "img",
                                                           tree=tree, source_date_epoch=EPOCH))
    runner.run(archives.tar_argv(tree, tmp_path / "plain.tar", EPOCH))
    assert path.read_bytes() == (tmp_path / "plain.tar").read_bytes()


# --- squashfs ------------------------------------------------------------------

def test_squashfs_pseudo_definitions_come_before_the_excludes(tmp_path):
    tree = _tree(tmp_path)
    plain = outputs.OutputContext(image_name=tmp_path / "img", tree=tree)
    assert "-p" not in archives.Squashfs().argv(plain)
    ctx = outputs.OutputContext(image_name=tmp_path / "img", tree=tree,
                                dev_nodes=devnodes.missing(tree))
    argv = archives.Squashfs().argv(ctx)
    assert argv[-4:] == ["-wildcards", "-e", "proc/*", "sys/*"]
    pseudo = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-p"]
    assert f"dev/null C {EPOCH} 666 0 0 1 3" in pseudo
    assert f"dev/fd S {EPOCH} 777 0 0 /proc/self/fd" in pseudo
    assert f"dev/pts D {EPOCH} 755 0 0" in pseudo
    assert len(pseudo) == len(EXPECTED)


@pytest.mark.skipif(not (shutil.which("mksquashfs") and shutil.which("unsquashfs")),
                    reason="squashfs-tools missing")
def test_squashfs_holds_the_entries(tmp_path):
    tree = _tree(tmp_path)
    ctx = outputs.OutputContext(image_name=tmp_path / "img", tree=tree,
                                dev_nodes=devnodes.missing(tree))
    (path,) = archives.Squashfs().produce(ctx)
    listing = runner.run(["unsquashfs", "-lln", str(path)]).stdout
    lines = {line.split()[-1] if "->" not in line else line.split()[-3]: line.split()
             for line in listing.splitlines() if "squashfs-root/dev/" in line}
    null = lines["squashfs-root/dev/null"]
    assert null[:4] == ["crw-rw-rw-", "0/0", "1,", "3"]
    assert lines["squashfs-root/dev/ptmx"][:4] == ["crw-rw-rw-", "0/0", "5,", "2"]
    assert lines["squashfs-root/dev/stdin"][0] == "lrwxrwxrwx"
    assert lines["squashfs-root/dev/stdin"][-1] == "/proc/self/fd/0"
    assert lines["squashfs-root/dev/shm"][:2] == ["drwxr-xr-x", "0/0"]
    assert len(lines) == len(EXPECTED)


# --- ext4 ----------------------------------------------------------------------

def _small_plan():
    return layout.plan_disk(load_config(GRAPH).assign_ids("small"), tree_bytes=0,
                            image_size=64 << 20)


def _debugfs(raw: Path, offset: int, command: str) -> str:
    return runner.run(["debugfs", "-R", command, f"{raw}?offset={offset}"]).stdout


def test_debugfs_makes_each_entry_from_its_directory():
    entry = devnodes.DevEntry("dev/null", devnodes.Node("null", devnodes.CHAR, 0o666, 1, 3),
                              EPOCH)
    assert assemble.debugfs_dev_commands([entry]) == [
        'cd "/dev"', 'mknod "null" c 1 3', 'sif "/dev/null" mode 020666',
        'sif "/dev/null" uid 0', 'sif "/dev/null" gid 0', f'sif "/dev/null" atime @{EPOCH}',
        f'sif "/dev/null" mtime @{EPOCH}', f'sif "/dev/null" ctime @{EPOCH}']


@pytest.mark.skipif(not shutil.which("mkfs.ext4", path=SBIN), reason="e2fsprogs not installed")
def test_ext4_holds_the_entries_and_stays_reproducible(tmp_path):
    tree = _tree(tmp_path)
    plan = _small_plan()
    disks = []
    for n in range(2):
        os.utime(tree / "dev", (EPOCH - 10 * n, EPOCH))     # read at other moments
        disks.append(assemble.build_disk(plan, tree, tmp_path / f"d{n}.raw",
                                         devnodes.missing(tree), epoch=EPOCH).raw)
    assert disks[0].read_bytes() == disks[1].read_bytes()
    offset = plan.root_fs.offset
    found = {}
    for line in _debugfs(disks[0], offset, "ls -p /dev").splitlines():
        fields = line.split("/")
        if len(fields) >= 8 and fields[5] not in (".", ".."):
            found[fields[5]] = (int(fields[2], 8), int(fields[3]), int(fields[4]))
    kinds = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.SYMTYPE: stat.S_IFLNK,
             tarfile.DIRTYPE: stat.S_IFDIR}
    assert found == {name: (kinds[kind] | mode, 0, 0)
                     for name, (kind, mode, *_rest) in EXPECTED.items()}
    null = _debugfs(disks[0], offset, "stat /dev/null")
    assert "Device major/minor number: 01:03" in null
    assert "atime: 0x6553f100" in null and "ctime: 0x6553f100" in null
    assert 'Fast link dest: "/proc/self/fd/2"' in _debugfs(disks[0], offset, "stat /dev/stderr")
    # and the filesystem is consistent after debugfs wrote to it
    check = runner.run(["e2fsck", "-f", "-n", f"{disks[0]}?offset={offset}"], check=False)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(not shutil.which("mkfs.ext4", path=SBIN), reason="e2fsprogs not installed")
def test_ext4_entries_debugfs_refuses_fail_the_mkfs(tmp_path):
    tree = _tree(tmp_path)
    entries = devnodes.missing(tree)
    (tree / "dev").rmdir()
    with pytest.raises(BlockDeviceError, match="mkfs 'mkfs_root': adding the /dev entries"):
        assemble.build_disk(_small_plan(), tree, tmp_path / "d.raw", entries)


def test_a_patch_that_would_drop_an_entry_makes_the_disk_anew(tmp_path):
    tree = _tree(tmp_path)
    with pytest.raises(CannotPatch, match="/dev/null"):
        assemble.patch_disk(_small_plan(), tree, tmp_path / "d.raw", ["etc/hostname", "dev/null"],
                            devnodes.missing(tree))


# --- only in a user namespace ----------------------------------------------------

_PROBE = """
import sys
from pathlib import Path
from dib.pipeline import artifacts
print(" ".join(e.node.name for e in artifacts.rootless_dev_nodes(Path(sys.argv[1]))))
"""


def test_only_a_build_in_a_user_namespace_adds_entries(tmp_path):
    from dib.runtime.mounts import in_user_namespace
    tree = _tree(tmp_path)
    here = subprocess.run([sys.executable, "-c", _PROBE, str(tree)], capture_output=True,
                          text=True, check=True).stdout.split()
    assert here == ([] if not in_user_namespace() else sorted(EXPECTED))
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (apt-get install util-linux)")
    inside = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c",
                             _PROBE, str(tree)], capture_output=True, text=True)
    if inside.returncode != 0 and "unshare failed" in inside.stderr:
        pytest.skip(f"no user namespaces here: {inside.stderr.strip()}")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.split() == sorted(EXPECTED)
