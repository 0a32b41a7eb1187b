"""Files that cache entries have in common are stored once."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from dib.cache import CacheStore, prune
from dib.cache.dedup import MIN_SIZE

BIG = b"debian package file\n" * 1000
STAMP = 1_600_000_000


def put(layer: Path, rel: str, data: bytes = BIG, mode: int = 0o644,
        mtime: int = STAMP) -> None:
    path = layer / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))


def publish(store: CacheStore, tmp_path: Path, key: str, files: dict[str, dict],
            parent: str | None = None):
    layer = tmp_path / f"build-{key}"
    for rel, spec in files.items():
        put(layer, rel, **spec)
    entry = store.publish(key, layer, {"step": key, "parent": parent})
    store.close()
    return entry


def ino(entry, rel: str) -> int:
    return os.lstat(entry.layer / rel).st_ino


def unique_inode_bytes(*layers: Path) -> int:
    """What the layers' contents take on disk, every inode counted once."""
    seen = {}
    for layer in layers:
        for path in layer.rglob("*"):
            st = os.lstat(path)
            seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


def test_identical_files_of_two_entries_share_one_inode(tmp_path):
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"usr/lib/libx.so": {}, "usr/bin/tool": {"mode": 0o755}})
    b = publish(store, tmp_path, "b", {"usr/lib/libx.so": {}, "usr/bin/tool": {"mode": 0o755},
                                      "etc/own": {"data": b"only in b" * 1000}})
    assert ino(a, "usr/lib/libx.so") == ino(b, "usr/lib/libx.so")
    assert ino(a, "usr/bin/tool") == ino(b, "usr/bin/tool")
    assert (b.layer / "usr/lib/libx.so").read_bytes() == BIG
    assert os.lstat(b.layer / "usr/bin/tool").st_mode & 0o777 == 0o755


@pytest.mark.parametrize("difference", [{"mode": 0o600}, {"mtime": STAMP + 1},
                                        {"data": BIG + b"!"}])
def test_files_differing_in_content_or_any_metadata_are_not_shared(tmp_path, difference):
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"f": {}})
    b = publish(store, tmp_path, "b", {"f": difference})
    assert ino(a, "f") != ino(b, "f")
    # Neither copy took the other's metadata.
    assert os.lstat(a.layer / "f").st_mtime == STAMP
    assert os.lstat(a.layer / "f").st_mode & 0o777 == 0o644
    assert store.use("a") is not None and store.use("b") is not None
    store.close()


def test_files_differing_in_an_xattr_are_not_shared(tmp_path):
    store = CacheStore(tmp_path / "cache")
    layer = tmp_path / "probe"
    put(layer, "f")
    try:
        os.setxattr(layer / "f", "user.dib", b"1")
    except OSError:
        pytest.skip("the temporary directory's filesystem has no user xattrs")
    a = publish(store, tmp_path, "a", {"f": {}})
    b_layer = tmp_path / "build-b"
    put(b_layer, "f")
    os.setxattr(b_layer / "f", "user.dib", b"1")
    b = store.publish("b", b_layer, {"step": "b", "parent": None})
    store.close()
    assert ino(a, "f") != ino(b, "f")
    assert os.getxattr(b.layer / "f", "user.dib") == b"1"


def test_small_files_are_shared_and_empty_ones_are_not(tmp_path):
    store = CacheStore(tmp_path / "cache")
    small = {"data": b"x" * MIN_SIZE}
    empty = {"data": b""}
    a = publish(store, tmp_path, "a", {"etc/hostname": small, "etc/marker": empty})
    b = publish(store, tmp_path, "b", {"etc/hostname": small, "etc/marker": empty})
    assert ino(a, "etc/hostname") == ino(b, "etc/hostname")
    assert ino(a, "etc/marker") != ino(b, "etc/marker")


def test_the_layer_keeps_its_directory_times_and_digest(tmp_path):
    store = CacheStore(tmp_path / "cache")
    publish(store, tmp_path, "a", {"usr/lib/libx.so": {}})
    layer = tmp_path / "build-b"
    put(layer, "usr/lib/libx.so")
    os.utime(layer / "usr" / "lib", (STAMP, STAMP))
    b = store.publish("b", layer, {"step": "b", "parent": None})
    store.close()
    assert os.lstat(b.layer / "usr" / "lib").st_mtime == STAMP
    assert store.use("b") is not None, "the digest must still match the stored layer"
    store.close()


def test_no_two_paths_a_build_sees_at_once_share_an_inode(tmp_path):
    # mkfs -d and tar turn one inode seen under two names into a hard link
    # in the image, so sharing must not reach across a layer and the layers
    # below it, nor within one layer.
    store = CacheStore(tmp_path / "cache")
    base = publish(store, tmp_path, "base", {"usr/share/a": {}})
    child = publish(store, tmp_path, "child", {"usr/share/b": {}, "usr/share/c": {}},
                    parent="base")
    inodes = {ino(base, "usr/share/a"), ino(child, "usr/share/b"), ino(child, "usr/share/c")}
    assert len(inodes) == 3
    # A layer elsewhere shares with one of them.
    other = publish(store, tmp_path, "other", {"usr/share/a": {}})
    assert ino(other, "usr/share/a") in inodes


def test_hard_links_inside_a_layer_stay_as_they_were(tmp_path):
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"usr/bin/perl": {}})
    layer = tmp_path / "build-b"
    put(layer, "usr/bin/perl")
    os.link(layer / "usr/bin/perl", layer / "usr/bin/perl5")
    b = store.publish("b", layer, {"step": "b", "parent": None})
    store.close()
    assert ino(b, "usr/bin/perl") == ino(b, "usr/bin/perl5")
    assert ino(b, "usr/bin/perl") != ino(a, "usr/bin/perl")


def test_size_counts_shared_bytes_once(tmp_path):
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"f": {}, "g": {"data": b"a" * 20000}})
    b = publish(store, tmp_path, "b", {"f": {}, "g": {"data": b"b" * 20000}})
    a, b = store.get("a"), store.get("b")
    assert store.size_of([a, b]) == unique_inode_bytes(a.layer, b.layer)
    assert store.size_of([a, b]) < a.size + b.size
    assert store.size_of([b]) == b.size


def test_the_size_cap_counts_shared_bytes_once(tmp_path):
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"f": {}})
    b = publish(store, tmp_path, "b", {"f": {}})
    both = unique_inode_bytes(a.layer, b.layer)
    result = prune(store, max_size=both)
    assert result.removed == [] and result.kept_bytes == both
    assert {e.key for e in store.entries()} == {"a", "b"}


def test_pruning_one_entry_leaves_the_other_whole(tmp_path):
    store = CacheStore(tmp_path / "cache")
    old = publish(store, tmp_path, "old", {"f": {}, "g": {"data": b"g" * 9000}})
    publish(store, tmp_path, "new", {"f": {}})
    past = time.time() - 30 * 86400
    os.utime(old.path / "used", (past, past))
    prune(store, max_size=None, max_age=86400)
    assert {e.key for e in store.entries()} == {"new"}
    new = store.use("new")
    assert new is not None and (new.layer / "f").read_bytes() == BIG
    store.close()
    # The index keeps only what an entry still holds.
    objects = list(store.objects_dir.iterdir())
    assert [os.lstat(o).st_ino for o in objects] == [ino(new, "f")]
    prune(store, max_size=0)
    assert list(store.objects_dir.iterdir()) == []


def test_a_failed_publish_leaves_no_entry_and_no_lasting_links(tmp_path):
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"f": {}})
    layer = tmp_path / "build-b"
    put(layer, "f")
    put(layer, "new", b"n" * 9000)
    with pytest.raises(TypeError):     # meta.json cannot be written
        store.publish("b", layer, {"step": "b", "parent": None, "bad": object()})
    assert store.get("b") is None and list(store.tmp_dir.iterdir()) == []
    # The build gets its layer back, whole.
    assert (layer / "f").read_bytes() == BIG and (layer / "new").read_bytes() == b"n" * 9000
    for path in layer.rglob("*"):
        path.unlink()
    store.collect_objects()
    assert [os.lstat(o).st_ino for o in store.objects_dir.iterdir()] == [ino(a, "f")]
    assert json.loads((a.path / "shared.json").read_text()) == {
        str(ino(a, "f")): os.lstat(a.layer / "f").st_blocks * 512}


def test_a_layer_known_by_its_contents_shares_nothing(tmp_path):
    # Entries above it may be reused over another copy of it, made by a
    # rerun of its step: sharing could give both the same inode.
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"f": {}})
    layer = tmp_path / "build-b"
    put(layer, "f")
    b = store.publish("b", layer, {"step": "b", "parent": None, "output": "contents-digest"})
    store.close()
    assert ino(a, "f") != ino(b, "f")
    assert os.lstat(b.layer / "f").st_nlink == 1
