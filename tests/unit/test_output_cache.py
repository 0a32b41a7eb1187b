"""Finished images kept by key, handed out only while unchanged."""
from __future__ import annotations

import os

from dib import provenance
from dib.cache.outputs import KEEP_ENTRIES, OutputCache
from dib.pipeline.builder import _packages_of, _tree_facts
from dib.sbom.inventory import Distro


def test_a_stored_image_is_restored_by_key(tmp_path):
    cache = OutputCache(tmp_path / "cache")
    image = tmp_path / "out" / "img.qcow2"
    image.parent.mkdir()
    image.write_bytes(b"qcow2 data")
    cache.store("k", [image])
    image.unlink()
    restored = cache.restore("k", image.parent)
    assert restored == [image]
    assert image.read_bytes() == b"qcow2 data"
    assert cache.restore("other", image.parent) is None


def test_an_image_changed_in_place_is_not_handed_out_again(tmp_path):
    cache = OutputCache(tmp_path / "cache")
    image = tmp_path / "img.raw"
    image.write_bytes(b"pristine")
    cache.store("k", [image])
    with open(image, "r+b") as handle:     # e.g. booted without -snapshot
        handle.write(b"BOOTED")
    os.utime(image, ns=(1, 1))
    assert cache.restore("k", tmp_path) is None
    assert not (tmp_path / "cache" / "outputs" / "k").exists()


def test_only_the_most_recent_entries_are_kept(tmp_path):
    cache = OutputCache(tmp_path / "cache")
    for number in range(KEEP_ENTRIES + 2):
        image = tmp_path / f"img{number}.raw"
        image.write_bytes(b"x" * number)
        cache.store(f"k{number}", [image])
        meta = tmp_path / "cache" / "outputs" / f"k{number}" / "meta.json"
        os.utime(meta, (1000 + number, 1000 + number))
    cache.store("last", [tmp_path / "img0.raw"])
    kept = sorted(p.name for p in (tmp_path / "cache" / "outputs").iterdir())
    assert len(kept) == KEEP_ENTRIES
    assert "k0" not in kept and "last" in kept


STATUS = """Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9
"""


def test_the_packages_kept_with_the_images_are_those_read_from_the_tree(tmp_path):
    # Restored images never need the tree: the provenance gets the same
    # packages from the entry as from the tree they were made from.
    tree = tmp_path / "tree"
    (tree / "var/lib/dpkg").mkdir(parents=True)
    (tree / "var/lib/dpkg/status").write_text(STATUS)
    (tree / "etc").mkdir()
    (tree / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    cache = OutputCache(tmp_path / "cache")
    image = tmp_path / "img.qcow2"
    image.write_bytes(b"qcow2 data")
    cache.store("k", [image], facts=_tree_facts(tree))
    assert _packages_of(cache.facts("k")) == provenance.read_packages(tree)
    assert [p.source for p in _packages_of(cache.facts("k"))[0]] == ["bash", "glibc"]


def test_an_entry_without_packages_sends_the_provenance_to_the_tree(tmp_path):
    cache = OutputCache(tmp_path / "cache")
    image = tmp_path / "img.qcow2"
    image.write_bytes(b"qcow2 data")
    cache.store("k", [image])
    assert cache.facts("k") == {} and _packages_of(cache.facts("k")) is None
    assert _packages_of({"packages": [{"name": "x"}], "distro": {}}) is None
    cache.store("k2", [image], facts={"packages": [],
                                      "distro": {"namespace": "debian", "release": ""}})
    assert _packages_of(cache.facts("k2")) == ([], Distro("debian", ""))
