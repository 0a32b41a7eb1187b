"""What a reproducible build (SOURCE_DATE_EPOCH) does to the tree: the
machine's state files removed, every later mtime clamped."""
from __future__ import annotations

import os

from dib.runtime import reproducible

EPOCH = 1700000000


def test_settle_removes_state_files_and_keeps_the_rest(tmp_path):
    for relative in ("var/cache/ldconfig/aux-cache", "var/lib/systemd/random-seed",
                     "etc/ld.so.cache"):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"state")
    removed = reproducible.settle_tree(tmp_path)
    assert removed == ["var/cache/ldconfig/aux-cache", "var/lib/systemd/random-seed"]
    assert not (tmp_path / "var/lib/systemd/random-seed").exists()
    assert (tmp_path / "etc/ld.so.cache").read_bytes() == b"state"


def test_settle_leaves_a_symlink_alone(tmp_path):
    seed = tmp_path / "var/lib/systemd/random-seed"
    seed.parent.mkdir(parents=True)
    seed.symlink_to("/dev/null")
    assert reproducible.settle_tree(tmp_path) == []
    assert seed.is_symlink()


def test_clamp_brings_later_mtimes_down_and_keeps_earlier_ones(tmp_path):
    old, new = tmp_path / "old", tmp_path / "sub" / "new"
    new.parent.mkdir()
    old.write_text("o")
    new.write_text("n")
    link = tmp_path / "sub" / "link"
    link.symlink_to("../old")
    os.utime(old, (EPOCH - 50, EPOCH - 100))
    os.utime(new, (EPOCH + 50, EPOCH + 100))
    changed = reproducible.clamp_mtimes(tmp_path, EPOCH)
    assert os.lstat(old).st_mtime == EPOCH - 100        # already older: untouched
    assert os.lstat(new).st_mtime == EPOCH
    # the symlink itself is clamped, and through it nothing else changed
    assert os.lstat(link).st_mtime == EPOCH
    assert os.lstat(tmp_path / "sub").st_mtime == EPOCH
    assert os.lstat(tmp_path).st_mtime == EPOCH
    # new, link, sub and the root (just made, so newer than the epoch)
    assert changed == 4


def test_late_paths_lists_later_mtimes_without_changing_them(tmp_path):
    (tmp_path / "boot" / "efi" / "EFI").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    late, early = tmp_path / "etc" / 'a "b"', tmp_path / "etc" / "early"
    late.write_text("l")
    early.write_text("e")
    os.utime(early, (EPOCH, EPOCH - 10))
    for path in (tmp_path / "etc", tmp_path / "boot"):
        os.utime(path, (EPOCH, EPOCH - 10))
    found = reproducible.late_paths(tmp_path, EPOCH, keep_out=["boot/efi"])
    # the root, and boot/efi itself but nothing under it
    assert sorted(found) == ["", "boot/efi", 'etc/a "b"']
    assert os.lstat(late).st_mtime > EPOCH          # read, not changed
