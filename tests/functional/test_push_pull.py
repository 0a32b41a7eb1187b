"""dib push and dib pull against a real registry (Debian's docker-registry on
127.0.0.1): both layouts round-trip byte for byte, the containerDisk layer is
what KubeVirt expects, and a blob damaged in the registry's storage is caught.

No OS build is needed: a small qcow2 made by qemu-img stands in for a built
image, with a provenance statement that names it beside it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from functional_support import ROOT, needs_registry

pytestmark = [pytest.mark.functional, needs_registry,
              pytest.mark.skipif(shutil.which("qemu-img") is None,
                                 reason="qemu-img is not installed (tools/install-host-deps)")]


def dib(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dib", *args], capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """vm.qcow2 with data in it, and what a build writes beside it."""
    where = tmp_path_factory.mktemp("built")
    raw = where / "vm.raw"
    raw.write_bytes(os.urandom(3 << 20) + b"\0" * (5 << 20))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                    str(where / "vm.qcow2")], check=True)
    image = where / "vm.qcow2"
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": "vm.qcow2", "digest": {"sha256": sha256(image)}}],
                 "predicateType": "https://slsa.dev/provenance/v1",
                 "predicate": {"buildDefinition": {
                     "buildType": "urn:dib:build-type:disk-image:v1",
                     "externalParameters": {"elements": ["debian-minimal", "vm"]}},
                     "runDetails": {"builder": {"id": "urn:dib:builder:local-host:v1"},
                                    "metadata": {"finishedOn": "2026-01-02T03:04:05Z"}}}}
    (where / "vm.provenance.json").write_text(json.dumps(statement))
    (where / "vm.spdx.json").write_text(json.dumps({"spdxVersion": "SPDX-2.3"}))
    (where / "vm.d" / "dib-manifests").mkdir(parents=True)
    (where / "vm.d" / "dib-manifests" / "dib_arguments").write_text("-o vm debian-minimal vm\n")
    return image


def test_an_artifact_round_trips_with_its_sidecars_and_annotations(registry, built, tmp_path):
    pushed = dib("push", str(built), registry.url("images/vm:1"))
    assert pushed.returncode == 0, pushed.stderr
    manifest = registry.get_json("images/vm/manifests/1")
    assert manifest["artifactType"] == "application/vnd.dib.disk-image.v1"
    assert manifest["annotations"]["dib.image.sha256"] == sha256(built)
    assert manifest["annotations"]["dib.elements"] == "debian-minimal vm"
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2026-01-02T03:04:05Z"
    assert [layer["annotations"]["org.opencontainers.image.title"]
            for layer in manifest["layers"]] == ["vm.qcow2", "vm.spdx.json",
                                                 "vm.provenance.json", "vm.d.tar"]

    pulled = dib("pull", registry.url("images/vm:1"), "-o", str(tmp_path / "copy.qcow2"))
    assert pulled.returncode == 0, pulled.stderr
    assert sha256(tmp_path / "copy.qcow2") == sha256(built)
    assert (tmp_path / "copy.d" / "dib-manifests" / "dib_arguments").read_text() == \
        "-o vm debian-minimal vm\n"
    # The provenance came along and still names the copy.
    verified = dib("verify", str(tmp_path / "copy.qcow2"))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_raw_image_round_trips_as_an_artifact(registry, built, tmp_path):
    raw = built.with_name("vm.raw")
    assert dib("push", str(raw), registry.url("images/raw:1")).returncode == 0
    pulled = dib("pull", registry.url("images/raw:1"), "-o", str(tmp_path))
    assert pulled.returncode == 0, pulled.stderr
    assert sha256(tmp_path / "vm.raw") == sha256(raw)
    manifest = registry.get_json("images/raw/manifests/1")
    assert manifest["layers"][0]["mediaType"] == "application/vnd.dib.disk-image.layer.v1.raw"


def test_a_container_disk_is_one_tar_layer_of_disk_name_for_kubevirt(registry, built, tmp_path):
    pushed = dib("push", "--container-disk", str(built), registry.url("kubevirt/vm:1"))
    assert pushed.returncode == 0, pushed.stderr
    manifest = registry.get_json("kubevirt/vm/manifests/1")
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    with tarfile.open(registry.blob_file(layer["digest"])) as archive:
        disk = archive.getmember("disk/vm.qcow2")
        assert (disk.uid, disk.gid, disk.mode, disk.size) == (107, 107, 0o440,
                                                              built.stat().st_size)
        assert [m.name for m in archive.getmembers() if m.isreg()] == ["disk/vm.qcow2"]
    config = json.loads(registry.blob_file(manifest["config"]["digest"]).read_bytes())
    assert config["rootfs"]["diff_ids"] == [layer["digest"]]

    pulled = dib("pull", registry.url("kubevirt/vm:1"), "-o", str(tmp_path / "cd.qcow2"))
    assert pulled.returncode == 0, pulled.stderr
    assert sha256(tmp_path / "cd.qcow2") == sha256(built)


def test_a_blob_damaged_in_the_registry_fails_the_pull_and_writes_nothing(registry, built,
                                                                           tmp_path):
    assert dib("push", str(built), registry.url("images/damaged:1")).returncode == 0
    manifest = registry.get_json("images/damaged/manifests/1")
    blob = registry.blob_file(manifest["layers"][0]["digest"])
    saved = blob.read_bytes()
    damaged = bytearray(saved)
    damaged[len(damaged) // 2] ^= 0xFF
    blob.write_bytes(bytes(damaged))
    try:
        pulled = dib("pull", registry.url("images/damaged:1"), "-o", str(tmp_path / "x.qcow2"))
    finally:
        blob.write_bytes(saved)   # the other tests share this blob
    assert pulled.returncode == 1
    assert "is damaged" in pulled.stderr and "Traceback" not in pulled.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_tag_the_registry_does_not_have_is_one_clear_line(registry, tmp_path):
    pulled = dib("pull", registry.url("images/vm:missing"), "-o", str(tmp_path))
    assert pulled.returncode == 1
    assert "there is no tag 'missing'" in pulled.stderr
    assert "Traceback" not in pulled.stderr
