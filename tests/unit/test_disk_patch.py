"""Updating a kept disk in place: the patched filesystem holds what the tree
holds, and anything that cannot be patched exactly is refused."""
import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from dib import runner
from dib.blockdev import layout
from dib.blockdev.graph import load_config
from dib.blockdev.patch import CannotPatch, update_ext_fs
from dib.cache.disks import DiskBases
from dib.pipeline.artifacts import DiskArtifacts, _kept_plan, changed_paths

from tests.unit.test_blockdev_config import GRAPH
from tests.unit.test_blockdev_disk import VAR

MiB = 1024 ** 2
OFFSET = MiB
needs_e2fsprogs = pytest.mark.skipif(
    not shutil.which("debugfs", path="/usr/sbin:/sbin:/usr/bin"),
    reason="e2fsprogs not installed")


def make_fs(tree: Path, image: Path) -> str:
    with open(image, "wb") as handle:
        handle.truncate(64 * MiB)
    runner.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={OFFSET}", "-d", str(tree),
                str(image), "32768k"])
    return f"{image}?offset={OFFSET}"


def listing(root: Path) -> dict[str, tuple]:
    out = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            else:
                what = ""
            mtime = 0 if stat.S_ISLNK(st.st_mode) else int(st.st_mtime)
            out[os.path.relpath(path, root)] = (st.st_mode, mtime, what)
    return out


def read_back(fs: str, dest: Path) -> dict[str, tuple]:
    dest.mkdir()
    runner.run(["debugfs", "-R", f"rdump / {dest}", fs])
    found = listing(dest)
    found.pop("lost+found")
    return found


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def base(tmp_path):
    tree = tmp_path / "tree"
    write(tree / "etc/motd", "old motd " * 500)
    write(tree / "etc/keep", "kept")
    write(tree / "etc/gone", "GONE-MARKER " * 3000)
    write(tree / "olddir/deep/er/file", "DEEP-MARKER " * 3000)
    write(tree / "olddir/top", "t")
    os.symlink("top", tree / "olddir/link")
    write(tree / "becomes-file/inside", "x")
    write(tree / "becomes-dir", "file for now")
    os.symlink("motd", tree / "etc/link")
    image = tmp_path / "disk.raw"
    return tree, image, make_fs(tree, image)


@needs_e2fsprogs
def test_patched_filesystem_matches_the_tree(base, tmp_path):
    tree, image, fs = base
    write(tree / "etc/motd", "new motd")
    os.chmod(tree / "etc/motd", 0o600)
    (tree / "etc/gone").unlink()
    shutil.rmtree(tree / "olddir")
    shutil.rmtree(tree / "becomes-file")
    write(tree / "becomes-file", "a file now")
    (tree / "becomes-dir").unlink()
    write(tree / "becomes-dir/child", "c")
    (tree / "etc/link").unlink()
    os.symlink("keep", tree / "etc/link")
    write(tree / "new dir/with space", "s")
    os.setxattr(tree / "new dir/with space", "user.note", b"v\0x")
    os.utime(tree / "etc", (1500000000, 1500000000))
    changed = ["etc", "etc/motd", "etc/gone", "olddir", "becomes-file", "becomes-dir",
               "becomes-dir/child", "etc/link", "new dir", "new dir/with space"]

    update_ext_fs(image, OFFSET, tree, changed, tmp_path)

    check = runner.run(["e2fsck", "-fn", fs], check=False)
    assert check.returncode == 0, check.stdout
    assert read_back(fs, tmp_path / "out") == listing(tree)
    attrs = runner.run(["debugfs", "-R", 'ea_list "/new dir/with space"', fs]).stdout
    assert "user.note (3) = 76 00 78" in attrs
    data = image.read_bytes()
    assert b"GONE-MARKER " * 100 not in data and b"DEEP-MARKER " * 100 not in data


@needs_e2fsprogs
def test_paths_outside_the_list_are_left_alone(base, tmp_path):
    tree, image, fs = base
    write(tree / "etc/keep", "changed but not listed")
    update_ext_fs(image, OFFSET, tree, [], tmp_path)
    out = runner.run(["debugfs", "-R", "cat /etc/keep", fs])
    assert out.stdout == "kept"


@needs_e2fsprogs
def test_hard_links_and_fifos_are_refused(base, tmp_path):
    tree, image, _fs = base
    os.link(tree / "etc/keep", tree / "etc/keep2")
    with pytest.raises(CannotPatch, match="hard-linked"):
        update_ext_fs(image, OFFSET, tree, ["etc/keep2"], tmp_path)
    os.mkfifo(tree / "etc/fifo")
    with pytest.raises(CannotPatch, match="FIFO"):
        update_ext_fs(image, OFFSET, tree, ["etc/fifo"], tmp_path)


def test_names_debugfs_cannot_quote_are_refused(tmp_path):
    with pytest.raises(CannotPatch, match="cannot name"):
        update_ext_fs(tmp_path / "none.raw", OFFSET, tmp_path, ['etc/a"b'], tmp_path)


def test_changed_paths_are_those_after_the_shared_layers(tmp_path):
    new_top = tmp_path / "05-finalise"
    write(new_top / "etc/stamp", "x")
    cleanup = tmp_path / "06-cleanup"
    write(cleanup / "etc/manifest", "m")
    kept = [["root:1", None], ["install:2", ["usr/lib/x"]], ["finalise:3", ["etc/old"]],
            [None, ["etc/manifest"]]]
    layers = [("root:1", tmp_path / "r"), ("install:2", tmp_path / "i"),
              ("finalise:4", new_top), (None, cleanup)]
    paths, record = changed_paths(kept, layers)
    assert paths == ["etc", "etc/manifest", "etc/old", "etc/stamp"]
    assert record[:2] == kept[:2]
    assert record[2] == ["finalise:4", ["etc", "etc/stamp"]]
    assert record[3] == [None, ["etc", "etc/manifest"]]


def test_a_changed_layer_too_big_to_list_means_no_patch(tmp_path):
    with pytest.raises(CannotPatch, match="too big"):
        changed_paths([["root:1", None]], [("root:9", tmp_path)])


def test_paths_go_to_the_filesystem_that_holds_them():
    cfg = load_config(VAR.replace("      - name: swap\n        size: 0%\n", ""))
    plan = layout.plan_disk(cfg.assign_ids("v"), tree_bytes=0, image_size=2 * 1024 * MiB)
    root, var = plan.fs_at("/"), plan.fs_at("/var")
    paths = ["etc/motd", "var", "var/log/x", "boot/efi/EFI/a", "variable"]
    assert layout.paths_on(plan, root, paths) == ["etc/motd", "var", "variable"]
    assert layout.paths_on(plan, var, paths) == ["log/x"]


def test_kept_disk_round_trip_and_tamper_check(tmp_path):
    bases = DiskBases(tmp_path / "cache")
    raw = tmp_path / "image0.raw"
    raw.write_bytes(b"disk")
    record = {"plan": "p", "size": 4, "layers": [["a", ["etc"]], [None, None]]}
    assert bases.put("slot", raw, record)
    assert not raw.exists()
    taken = bases.take("slot", tmp_path / "again.raw")
    assert taken["layers"] == record["layers"] and (tmp_path / "again.raw").read_bytes() == b"disk"
    assert bases.take("slot", tmp_path / "third.raw") is None   # one user at a time

    bases.put("slot", tmp_path / "again.raw", record)
    kept = tmp_path / "cache" / "disks" / "slot" / "disk.raw"
    os.utime(kept, ns=(0, 0))                                  # changed since it was kept
    assert bases.take("slot", tmp_path / "fourth.raw") is None
    assert not (tmp_path / "fourth.raw").exists()


def test_only_the_newest_slots_are_kept(tmp_path):
    bases = DiskBases(tmp_path / "cache")
    for index in range(4):
        raw = tmp_path / f"{index}.raw"
        raw.write_bytes(b"x")
        bases.put(f"slot{index}", raw, {"plan": "p", "size": 1, "layers": []})
        meta = tmp_path / "cache" / "disks" / f"slot{index}" / "meta.json"
        os.utime(meta, (1000 + index, 1000 + index))
    raw = tmp_path / "last.raw"
    raw.write_bytes(b"x")
    bases.put("slot4", raw, {"plan": "p", "size": 1, "layers": []})
    kept = sorted(p.name for p in (tmp_path / "cache" / "disks").iterdir())
    assert kept == ["slot3", "slot4"]


def test_malformed_record_is_not_used(tmp_path):
    bases = DiskBases(tmp_path / "cache")
    raw = tmp_path / "r.raw"
    raw.write_bytes(b"x")
    bases.put("slot", raw, {"plan": "p", "size": 1, "layers": [["a"]]})
    assert bases.take("slot", tmp_path / "t.raw") is None
    assert not (tmp_path / "t.raw").exists()


def test_small_tree_growth_keeps_the_disk_size():
    cfg = load_config(GRAPH).assign_ids("g")
    first = layout.plan_disk(cfg, tree_bytes=900 * MiB)
    grown = layout.plan_disk(cfg, tree_bytes=900 * MiB + 4096)
    artifacts = DiskArtifacts(cfg, "test", False)
    kept = {"plan": layout.plan_signature(first), "size": first.size}
    same = _kept_plan(kept, grown, artifacts, 900 * MiB + 4096, explicit_size=False,
                      extra_size=None)
    assert layout.plan_signature(same) == kept["plan"]
    much = layout.plan_disk(cfg, tree_bytes=1200 * MiB)
    with pytest.raises(CannotPatch, match="layout or size"):
        _kept_plan(kept, much, artifacts, 1200 * MiB, explicit_size=False, extra_size=None)


@needs_e2fsprogs
def test_directory_replaced_by_a_link_drops_what_was_inside(base, tmp_path):
    tree, image, fs = base
    shutil.rmtree(tree / "olddir")
    write(tree / "elsewhere/top", "t2")
    os.symlink("elsewhere", tree / "olddir")
    update_ext_fs(image, OFFSET, tree, ["olddir", "olddir/top", "olddir/deep/er/file",
                                        "elsewhere", "elsewhere/top"], tmp_path)
    check = runner.run(["e2fsck", "-fn", fs], check=False)
    assert check.returncode == 0, check.stdout
    assert read_back(fs, tmp_path / "out") == listing(tree)


def test_no_filesystem_at_the_offset_is_refused(tmp_path):
    raw = tmp_path / "blank.raw"
    raw.write_bytes(bytes(4 * MiB))
    write(tmp_path / "tree/etc/x", "x")
    with pytest.raises(CannotPatch, match="no ext filesystem"):
        update_ext_fs(raw, OFFSET, tmp_path / "tree", ["etc/x"], tmp_path)
    with pytest.raises(CannotPatch, match="shorter"):
        update_ext_fs(raw, 8 * MiB, tmp_path / "tree", ["etc/x"], tmp_path)
