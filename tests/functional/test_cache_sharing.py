"""Over its cap, the cache shares what test cases have in common before it
gives up any of them, and the images stay as they were."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from dib.cache import CacheStore, prune
from functional_support import ROOT, needs_build_host

pytestmark = [pytest.mark.functional, needs_build_host]


def case_element(builds) -> None:
    # The two cases differ in one install.d hook's variable, so they share
    # the bootstrap and pre-install entries. The hook runs before the package
    # installs, which are therefore no step of their own (keys.phase_segments):
    # each case makes a whole install layer, most of it the same packages.
    builds.element("sharecase", {
        "README.rst": "x\n", "element-deps": "debian-minimal\n",
        "install.d/00-sharecase": ('#!/bin/bash\nset -eu\n'
                                   'echo "$DIB_SHARECASE" > /etc/sharecase\n')})


def build(builds, case: str, cache_dir: Path):
    result = builds.run("-t", "tar", "sharecase", name=case, cache_dir=cache_dir,
                        env={"DIB_SHARECASE": case})
    assert result.returncode == 0, result.output[-3000:]
    return result


def tar_listing(tar: Path) -> list[tuple]:
    """Every member as the image holds it: name, type (a hard link shows
    here), owner, mode, mtime, xattrs, link target and content digest; not
    the atime and ctime pax headers, which say when the tree was read."""
    listing = []
    with tarfile.open(tar) as archive:
        for member in archive:
            headers = {k: v for k, v in member.pax_headers.items()
                       if k not in ("atime", "ctime")}
            digest = None
            if member.isfile():
                digest = hashlib.sha256(archive.extractfile(member).read()).hexdigest()
            listing.append((member.name, member.type, member.uid, member.gid, member.mode,
                            member.mtime, member.linkname, sorted(headers.items()), digest))
    return listing


def test_over_the_cap_two_cases_share_instead_of_evicting(builds, tmp_path):
    cache_dir = tmp_path / "cache"
    case_element(builds)
    listings, installs = {}, {}
    for case in ("first", "second"):
        result = build(builds, case, cache_dir)
        listings[case] = tar_listing(result.image.with_suffix(".tar"))
        installs[case] = result.step("install")["key"]
    store = CacheStore(cache_dir / "phases")
    # Far below the default cap: storing and pruning shared nothing.
    assert not any((e.path / "shared.json").exists() for e in store.entries())
    assert not list(store.objects_dir.glob("*"))
    first, second = installs["first"], installs["second"]
    assert first != second and store.get(first) and store.get(second)

    unshared = store.size_of(store.entries())
    cap = unshared - (64 << 20)
    # A dry run shares nothing: this is what the cap alone would cost.
    would = prune(store, max_size=cap, dry_run=True)
    assert first in {e.key for e in would.removed}

    started = time.monotonic()
    pruned = subprocess.run([sys.executable, "-m", "dib", "cache", "--cache-dir",
                             str(cache_dir), "prune", "--max-size", f"{cap >> 20}M"],
                            capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    seconds = time.monotonic() - started
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 0 entries" in pruned.stdout, pruned.stdout
    shared = store.size_of(store.entries())
    assert shared <= cap
    assert all((store.get(key).path / "shared.json").exists() for key in (first, second))
    layers = [store.get(first).layer, store.get(second).layer]
    common = _inodes(layers[0]) & _inodes(layers[1])
    assert common, "the two install layers share no file"
    print(f"\nsharing took {seconds:.1f} s; cache {unshared >> 20} MiB -> {shared >> 20} MiB; "
          f"{len(common)} files of the install layers shared")

    # Made again from the shared layers (the finished images are kept apart
    # from the layers: without them the tar is written anew).
    shutil.rmtree(cache_dir / "outputs")
    for case in ("first", "second"):
        again = build(builds, case, cache_dir)
        for step in again.report["steps"]:
            if step["key"] and step["name"] != "outputs":
                assert step["cache"] == "local-hit", (case, step["name"], step["reason"])
        assert again.step("outputs")["cache"] == "miss"
        assert tar_listing(again.image.with_suffix(".tar")) == listings[case], case


def _inodes(layer: Path) -> set[int]:
    return {os.lstat(path).st_ino for path in layer.rglob("*")
            if path.is_file() and not path.is_symlink()}
