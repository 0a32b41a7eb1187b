"""Files that cache entries have in common are stored once, when pruning
finds the cache over its cap."""
from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import pytest

from dib.cache import CacheStore, prune
from dib.cache.dedup import MIN_SIZE
from dib.cli.main import main as dib_main

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
            parent: str | None = None, **meta):
    layer = tmp_path / f"build-{key}"
    for rel, spec in files.items():
        put(layer, rel, **spec)
    entry = store.publish(key, layer, {"step": key, "parent": parent, **meta})
    store.close()
    return entry


def share_all(store: CacheStore) -> None:
    store.share_files()


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


def nothing_shared(store: CacheStore) -> bool:
    return (not any((e.path / "shared.json").exists() for e in store.entries())
            and not any(store.objects_dir.glob("*")))


# -- what is shared -----------------------------------------------------------

def test_publishing_shares_nothing(tmp_path):
    # Storing a layer must cost what it did before sharing existed.
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"usr/lib/libx.so": {}})
    b = publish(store, tmp_path, "b", {"usr/lib/libx.so": {}})
    assert ino(a, "usr/lib/libx.so") != ino(b, "usr/lib/libx.so")
    assert nothing_shared(store)


def test_identical_files_of_two_entries_share_one_inode(tmp_path):
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"usr/lib/libx.so": {}, "usr/bin/tool": {"mode": 0o755}})
    b = publish(store, tmp_path, "b", {"usr/lib/libx.so": {}, "usr/bin/tool": {"mode": 0o755},
                                      "etc/own": {"data": b"only in b" * 1000}})
    share_all(store)
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
    share_all(store)
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
    share_all(store)
    assert ino(a, "f") != ino(b, "f")
    assert os.getxattr(b.layer / "f", "user.dib") == b"1"


def test_small_files_are_shared_and_empty_ones_are_not(tmp_path):
    store = CacheStore(tmp_path / "cache")
    small = {"data": b"x" * MIN_SIZE}
    empty = {"data": b""}
    a = publish(store, tmp_path, "a", {"etc/hostname": small, "etc/marker": empty})
    b = publish(store, tmp_path, "b", {"etc/hostname": small, "etc/marker": empty})
    share_all(store)
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
    share_all(store)
    assert (b.layer / "usr/lib/libx.so").stat().st_nlink > 1
    assert os.lstat(b.layer / "usr" / "lib").st_mtime == STAMP
    assert store.use("b") is not None, "the digest must still match the stored layer"
    store.close()


def test_no_two_paths_a_build_sees_at_once_share_an_inode(tmp_path):
    # mkfs -d and tar turn one inode seen under two names into a hard link
    # in the image, so sharing must not reach across a layer and the layers
    # below or above it, nor within one layer. Entries are shared in key
    # order, so "a-child" is shared before its parent "p-base".
    store = CacheStore(tmp_path / "cache")
    base = publish(store, tmp_path, "p-base", {"usr/share/a": {}})
    child = publish(store, tmp_path, "a-child", {"usr/share/a": {}, "usr/share/b": {}},
                    parent="p-base")
    grandchild = publish(store, tmp_path, "b-grandchild", {"usr/share/c": {}},
                         parent="a-child")
    other = publish(store, tmp_path, "other", {"usr/share/a": {}})
    share_all(store)
    inodes = {ino(base, "usr/share/a"), ino(child, "usr/share/a"), ino(child, "usr/share/b"),
              ino(grandchild, "usr/share/c")}
    assert len(inodes) == 4
    # A layer outside that chain shares with one of them.
    assert ino(other, "usr/share/a") in inodes


def test_hard_links_inside_a_layer_stay_as_they_were(tmp_path):
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"usr/bin/perl": {}})
    layer = tmp_path / "build-b"
    put(layer, "usr/bin/perl")
    os.link(layer / "usr/bin/perl", layer / "usr/bin/perl5")
    b = store.publish("b", layer, {"step": "b", "parent": None})
    store.close()
    share_all(store)
    assert ino(b, "usr/bin/perl") == ino(b, "usr/bin/perl5")
    assert ino(b, "usr/bin/perl") != ino(a, "usr/bin/perl")


def test_a_layer_known_by_its_contents_shares_nothing(tmp_path):
    # Entries above it may be reused over another copy of it, made by a
    # rerun of its step: sharing could give both the same inode.
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"f": {}})
    b = publish(store, tmp_path, "b", {"f": {}}, output="contents-digest")
    share_all(store)
    assert ino(a, "f") != ino(b, "f")
    assert os.lstat(b.layer / "f").st_nlink == 1
    assert not (b.path / "shared.json").exists()


def test_an_entry_in_use_is_not_shared(tmp_path):
    # Its layer is an overlay lower directory of a running build: renaming
    # files inside it would change what that build sees.
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"f": {}})
    b = publish(store, tmp_path, "b", {"f": {}})
    c = publish(store, tmp_path, "c", {"f": {}})
    holder = CacheStore(tmp_path / "cache")
    assert holder.use("b") is not None
    share_all(store)
    assert ino(a, "f") == ino(c, "f")
    assert os.lstat(b.layer / "f").st_nlink == 1
    assert not (b.path / "shared.json").exists()
    holder.close()
    # Once the build is done it is shared like the others.
    share_all(store)
    assert ino(b, "f") == ino(a, "f")


def test_a_build_waits_for_an_entry_being_shared(tmp_path):
    # Half way through, a layer holds a link not yet renamed into place and
    # directories with today's time: a build checking it then would find it
    # changed and drop it. The sharer's exclusive lock makes the build wait.
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"f": {}})
    fd = os.open(a.path / "used", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.link(a.layer / "f", a.layer / "f.half-shared")
    found = []
    build = threading.Thread(target=lambda: found.append(store.use("a")))
    build.start()
    build.join(0.5)
    assert build.is_alive(), "the build did not wait for the sharer"
    os.unlink(a.layer / "f.half-shared")
    os.close(fd)
    build.join(10)
    assert found[0] is not None and found[0].key == "a"
    store.close()


def test_an_entry_is_shared_once(tmp_path):
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"f": {}})
    share_all(store)
    first = (a.path / "shared.json").read_text()
    # Its object gone from the index (as if collected), a second pass would
    # make the file an object again if it read the entry again.
    for item in store.objects_dir.iterdir():
        item.unlink()
    share_all(store)
    assert (a.path / "shared.json").read_text() == first
    assert list(store.objects_dir.iterdir()) == []


# -- sizes and pruning ----------------------------------------------------------

def test_size_counts_shared_bytes_once(tmp_path):
    store = CacheStore(tmp_path / "cache")
    publish(store, tmp_path, "a", {"f": {}, "g": {"data": b"a" * 20000}})
    publish(store, tmp_path, "b", {"f": {}, "g": {"data": b"b" * 20000}})
    share_all(store)
    a, b = store.get("a"), store.get("b")
    assert store.size_of([a, b]) == unique_inode_bytes(a.layer, b.layer)
    assert store.size_of([a, b]) < a.size + b.size
    assert store.size_of([b]) == b.size


@pytest.mark.parametrize("options", [{"max_size": 1 << 40}, {"max_size": None},
                                     {"max_size": 0, "dry_run": True}])
def test_a_cache_under_its_cap_shares_nothing(tmp_path, options):
    store = CacheStore(tmp_path / "cache")
    a = publish(store, tmp_path, "a", {"f": {}})
    b = publish(store, tmp_path, "b", {"f": {}})
    prune(store, **options)
    assert nothing_shared(store)
    assert ino(a, "f") != ino(b, "f")


def test_over_the_cap_sharing_comes_before_eviction(tmp_path):
    store = CacheStore(tmp_path / "cache")
    old = publish(store, tmp_path, "old", {"f": {}})
    new = publish(store, tmp_path, "new", {"f": {}})
    past = time.time() - 3600
    os.utime(old.path / "used", (past, past))
    unshared = old.size + new.size
    assert unique_inode_bytes(old.layer, new.layer) == unshared
    # Over the cap as stored; one copy of f fewer fits.
    result = prune(store, max_size=unshared - 1)
    assert result.removed == []
    assert {e.key for e in store.entries()} == {"old", "new"}
    assert ino(old, "f") == ino(new, "f")
    assert result.kept_bytes == unique_inode_bytes(old.layer, new.layer) < unshared


def test_still_over_the_cap_after_sharing_the_least_recently_used_goes(tmp_path):
    store = CacheStore(tmp_path / "cache")
    old = publish(store, tmp_path, "old", {"f": {}, "g": {"data": b"g" * 9000}})
    new = publish(store, tmp_path, "new", {"f": {}})
    past = time.time() - 3600
    os.utime(old.path / "used", (past, past))
    result = prune(store, max_size=new.size)
    assert [e.key for e in result.removed] == ["old"]
    assert [e.key for e in store.entries()] == ["new"]
    entry = store.use("new")
    assert entry is not None and (entry.layer / "f").read_bytes() == BIG
    store.close()
    # The index keeps only what an entry still holds.
    objects = list(store.objects_dir.iterdir())
    assert [os.lstat(o).st_ino for o in objects] == [ino(new, "f")]
    assert result.kept_bytes == new.size
    prune(store, max_size=0)
    assert list(store.entries()) == [] and list(store.objects_dir.iterdir()) == []


def test_an_entry_in_use_is_neither_shared_nor_evicted_over_the_cap(tmp_path):
    store = CacheStore(tmp_path / "cache")
    busy = publish(store, tmp_path, "busy", {"f": {}})
    publish(store, tmp_path, "idle", {"f": {}})
    holder = CacheStore(tmp_path / "cache")
    assert holder.use("busy") is not None
    prune(store, max_size=0)
    assert [e.key for e in store.entries()] == ["busy"]
    assert os.lstat(busy.layer / "f").st_nlink == 1
    assert not (busy.path / "shared.json").exists()
    holder.close()


def test_dib_cache_prune_by_hand_shares_before_it_evicts(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DIB_CACHE_DIR", raising=False)
    store = CacheStore(tmp_path / "cache" / "phases")
    a = publish(store, tmp_path, "a", {"f": {"data": BIG * 10}})
    b = publish(store, tmp_path, "b", {"f": {"data": BIG * 10}})
    cap = f"{(a.size + b.size) // 1024 - 1}K"
    assert dib_main(["cache", "--cache-dir", str(tmp_path / "cache"),
                     "prune", "--max-size", cap]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    assert ino(a, "f") == ino(b, "f")
    assert json.loads((b.path / "shared.json").read_text()) == {
        str(ino(b, "f")): os.lstat(b.layer / "f").st_blocks * 512}
