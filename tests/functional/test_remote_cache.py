"""The phase cache shared through a real OCI registry (Debian's docker-registry).

One cold build with an empty local cache pushes its steps and its finished
image; a second build with another empty local cache pulls the records of
the steps and the image, and no layer. The other cases run in this order on
that second cache: the damaged case needs the tree (so it fetches every
layer), and the stopped-registry case relies on those layers being local.
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from functional_support import Builds, LocalRegistry, needs_build_host, needs_registry

pytestmark = [pytest.mark.functional, needs_build_host, needs_registry]
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+"
GIVE_UP = "building locally without it"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Builds:
    # Every build writes the same image path: cleanup.d keys on where its
    # products go, so only builds of the same output path share that step.
    return Builds(tmp_path_factory.mktemp("remote-builds"))


def build(scratch: Builds, registry_url: str, cache: Path, *args: str):
    result = scratch.run("-t", "tar", "--cache-remote", registry_url, *args,
                         "debian-minimal", cache_dir=cache)
    if result.returncode == 0:
        tar = result.image.with_suffix(".tar")
        result.report["listing"] = listing(tar)
        result.report["sha256"] = hashlib.sha256(tar.read_bytes()).hexdigest()
    return result


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    # One path, wiped between builds: the manifests' cleanup.d records
    # DIB_LOCKFILES, which lives in the cache directory.
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def pushed(registry, scratch, cache):
    result = build(scratch, registry.url(), cache, "--explain-cache")
    assert result.returncode == 0, result.output[-3000:]
    return result


@pytest.fixture(scope="module")
def pulled(registry, scratch, pushed, cache):
    shutil.rmtree(cache)
    cache.mkdir()
    result = build(scratch, registry.url(), cache, "--explain-cache")
    assert result.returncode == 0, result.output[-3000:]
    return result, cache


def phase_steps(result) -> list[dict]:
    """The steps the remote cache shares as layers: those with a key, but
    the finished images (the provenance has no key)."""
    return [s for s in result.report["steps"] if s["key"] and s["name"] != "outputs"]


def damage(registry: LocalRegistry, digest: str) -> None:
    blob = registry.blob_file(digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))


def listing(tar: Path) -> list[tuple]:
    with tarfile.open(tar) as archive:
        return sorted((m.name, m.type, m.mode, m.uid, m.gid, m.size, m.linkname)
                      for m in archive.getmembers())


def forget_locally(cache: Path, key: str) -> None:
    shutil.rmtree(cache / "phases" / "entries" / key)


def test_a_build_pushes_every_step_it_made(pushed, registry):
    steps = phase_steps(pushed)
    assert [s["name"] for s in steps][:1] == ["root"]
    for step in steps:
        assert step["cache"] == "miss", step["name"]
        assert step["reason"].endswith("not in the remote cache either"), step["name"]
        assert step["pushed"] and step["pushed"]["bytes"] > 0, step["name"]
        manifest = registry.get_json(f"dib/phases/manifests/{step['key']}")
        layer, *extras = manifest["layers"]
        assert layer["mediaType"].startswith(LAYER_TYPE)
        assert layer["annotations"]["dib.cache.part"] == "layer"
        assert [e["annotations"]["dib.cache.part"] for e in extras] in ([], ["extras"])
        assert sum(blob["size"] for blob in manifest["layers"]) == step["pushed"]["bytes"]
    assert "pushed to the remote cache" in pushed.output


def test_a_build_pushes_its_finished_image(pushed, registry):
    outputs = pushed.step("outputs")
    assert outputs["cache"] == "miss" and outputs["pushed"]["bytes"] > 0
    manifest = registry.get_json(f"dib/phases/manifests/{outputs['key']}")
    assert [layer["annotations"]["org.opencontainers.image.title"]
            for layer in manifest["layers"]] == ["image.tar"]


def test_an_empty_local_cache_pulls_records_and_the_image_but_no_layer(pushed, pulled,
                                                                        registry):
    result, cache = pulled
    for step in phase_steps(result):
        assert step["cache"] == "remote-hit", (step["name"], step["reason"])
        assert step["pulled"]["layer"] is False, step["name"]
        # the record and the extras, not the layer
        manifest = registry.get_json(f"dib/phases/manifests/{step['key']}")
        assert step["pulled"]["bytes"] == manifest["config"]["size"] + sum(
            blob["size"] for blob in manifest["layers"][1:]), step["name"]
        assert not step["pushed"], step["name"]
    # Nothing was unpacked into the local cache: no layer came.
    assert list((cache / "phases" / "entries").iterdir()) == []
    outputs = result.step("outputs")
    assert outputs["cache"] == "remote-hit" and not outputs["pushed"]
    assert outputs["pulled"]["bytes"] >= pushed.image.with_suffix(".tar").stat().st_size
    assert "pulled the outputs from the remote cache" in result.output
    assert result.report["sha256"] == pushed.report["sha256"]
    assert result.report["listing"] == pushed.report["listing"]


def test_a_damaged_layer_found_when_the_tree_is_needed_is_made_here(pulled, registry,
                                                                     scratch):
    result, cache = pulled
    victim = phase_steps(result)[-1]
    manifest = registry.get_json(f"dib/phases/manifests/{victim['key']}")
    damage(registry, manifest["layers"][0]["digest"])
    # The image must be made here for the tree to be needed: its copies go.
    outputs = registry.get_json(f"dib/phases/manifests/{result.step('outputs')['key']}")
    damage(registry, outputs["layers"][0]["digest"])
    shutil.rmtree(cache / "outputs")

    again = build(scratch, registry.url(), cache)
    assert again.returncode == 0, again.output[-3000:]
    assert again.step("outputs")["cache"] == "miss"
    step = again.step(victim["name"])
    assert step["cache"] == "miss"
    assert step["reason"].endswith("the remote cache's copy was damaged")
    assert "damaged" in again.output
    assert GIVE_UP not in again.output   # the registry itself is still used
    for other in phase_steps(again):
        if other["name"] != victim["name"]:
            assert other["cache"] == "remote-hit" and other["pulled"]["layer"], other["name"]
    # The damaged entries were replaced by the ones made here.
    assert step["pushed"] and again.step("outputs")["pushed"]
    fixed = registry.get_json(f"dib/phases/manifests/{victim['key']}")
    assert fixed["layers"][0]["digest"] != manifest["layers"][0]["digest"]
    assert again.report["listing"] == result.report["listing"]


def test_a_stopped_registry_costs_one_warning_and_the_build_goes_on(pulled, scratch, tmp_path):
    result, cache = pulled
    stopped = LocalRegistry(tmp_path / "stopped")
    stopped.start()
    stopped.stop()
    victim = phase_steps(result)[-1]
    forget_locally(cache, victim["key"])

    again = build(scratch, stopped.url(), cache)
    assert again.returncode == 0, again.output[-3000:]
    assert again.step(victim["name"])["cache"] == "miss"
    assert again.output.count(GIVE_UP) == 1, again.output[-3000:]
    assert again.output.count("remote cache") == 1, again.output[-3000:]


def test_a_required_registry_that_does_not_answer_stops_the_build_at_once(scratch, tmp_path):
    stopped = LocalRegistry(tmp_path / "stopped")
    started = time.monotonic()
    failed = build(scratch, stopped.url(), tmp_path / "empty-cache",
                   "--cache-remote-required")
    assert failed.returncode != 0
    assert f"the remote cache {stopped.url()} does not answer" in failed.output
    assert "Traceback" not in failed.output
    assert failed.report.get("steps") == []
    assert time.monotonic() - started < 120
