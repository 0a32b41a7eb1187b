"""dib push / dib pull: references, the two layouts, what a build wrote beside
the image, and pulls checked against their digests (a tiny in-process HTTP
server stands in for the registry; the real one is in the functional tests)."""
from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
from pathlib import Path

import pytest
from fake_registry import FakeRegistry

from dib.cache import oci
from dib.cli.main import main as dib_main
from dib.errors import ConfigError, DibError
from dib.publish import image as images
from dib.publish import layout, transfer

QCOW2_HEAD = b"QFI\xfb" + b"\0" * 508


@pytest.fixture
def fake():
    server = FakeRegistry()
    yield server
    server.close()


def write_image(directory: Path, name: str = "vm.qcow2", size: int = 3000) -> Path:
    path = directory / name
    body = bytes(range(256)) * (size // 256 + 1)
    path.write_bytes((QCOW2_HEAD if name.endswith(".qcow2") else b"") + body[:size])
    return path


def statement(subjects: dict[str, str]) -> dict:
    return {"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects.items()],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {"externalParameters": {
                    "elements": ["debian-minimal", "vm"], "settings": {"arch": "arm64"}}},
                "runDetails": {"builder": {"version": {"dib": "9.8.7"}},
                               "metadata": {"invocationId": "dib-build-abc",
                                            "finishedOn": "2026-01-02T03:04:05Z"}}}}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- references -------------------------------------------------------------------

@pytest.mark.parametrize("text, host, repository, tag", [
    ("oci://127.0.0.1:5000/images/vm:1", "127.0.0.1:5000", "images/vm", "1"),
    ("oci://192.0.2.7/vm:v1.2_3", "192.0.2.7", "vm", "v1.2_3"),
    ("oci://[::1]:5000/a/b/c:latest", "[::1]:5000", "a/b/c", "latest"),
])
def test_a_reference_is_host_repository_and_tag(text, host, repository, tag):
    ref, got_tag = oci.parse_image_ref(text)
    assert (ref.host, ref.repository, got_tag) == (host, repository, tag)


@pytest.mark.parametrize("text, says", [
    ("oci://127.0.0.1:5000/images/vm", "no tag"),
    ("oci://127.0.0.1:5000:1", "no tag"),
    ("https://127.0.0.1:5000/images/vm:1", "expected oci://"),
    ("oci://127.0.0.1:5000/images/vm:-x", "is not a tag"),
    ("oci://127.0.0.1:5000/Images/vm:1", "not a repository"),
    ("oci://127.0.0.1:5000/images/vm@sha256:" + "0" * 64, "by digest"),
    ("oci://user:pw@127.0.0.1/images/vm:1", "credentials do not go in the URL"),
])
def test_a_malformed_reference_says_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=says):
        oci.parse_image_ref(text)


def test_a_malformed_reference_is_a_usage_error_naming_the_argument(tmp_path, capsys):
    image = write_image(tmp_path)
    assert dib_main(["push", str(image), "oci://127.0.0.1:5000/vm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dib: error: REFERENCE 'oci://127.0.0.1:5000/vm': no tag")
    assert "Traceback" not in err


# -- the image and what lies beside it ------------------------------------------------

def test_an_image_with_a_matching_provenance_carries_its_facts_and_sidecars(tmp_path):
    image = write_image(tmp_path)
    digest = sha256(image.read_bytes())
    (tmp_path / "vm.provenance.json").write_text(json.dumps(statement({"vm.qcow2": digest})))
    (tmp_path / "vm.spdx.json").write_text("{}")
    (tmp_path / "vm.d" / "dib-manifests").mkdir(parents=True)
    found = images.disk_image(image)
    assert (found.format, found.sha256, found.size) == ("qcow2", digest, image.stat().st_size)
    assert (found.created, found.arch) == ("2026-01-02T03:04:05Z", "arm64")
    assert [(s.media_type, s.title) for s in found.sidecars] == [
        (layout.SPDX_TYPE, "vm.spdx.json"), (layout.PROVENANCE_TYPE, "vm.provenance.json"),
        (layout.MANIFESTS_TYPE, "vm.d.tar")]
    assert found.annotations("artifact") == {
        "org.opencontainers.image.title": "vm.qcow2",
        "org.opencontainers.image.created": "2026-01-02T03:04:05Z",
        "dib.image.sha256": digest, "dib.image.format": "qcow2",
        "dib.image.size": str(found.size), "dib.image.layout": "artifact",
        "dib.elements": "debian-minimal vm", "dib.version": "9.8.7",
        "dib.build": "dib-build-abc"}


def test_a_provenance_of_another_file_is_left_out_with_a_warning(tmp_path, caplog):
    image = write_image(tmp_path, "vm.raw")
    (tmp_path / "vm.provenance.json").write_text(json.dumps(statement({"vm.raw": "0" * 64})))
    found = images.disk_image(image)
    assert found.format == "raw"
    assert found.sidecars == () and layout.ELEMENTS not in found.annotations("artifact")
    assert "does not name this image" in caplog.text


@pytest.mark.parametrize("name, content, says", [
    ("vm.qcow2", b"not a qcow2 at all", "named .qcow2 but is not a qcow2 image"),
    ("vm.tar", b"x" * 100, "neither a qcow2 image nor named .raw"),
])
def test_a_file_that_is_no_disk_image_is_refused(tmp_path, name, content, says):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ConfigError, match=says):
        images.check_image(tmp_path / name)


def test_a_missing_image_is_one_line_naming_the_argument(tmp_path, capsys):
    status = dib_main(["push", str(tmp_path / "gone.qcow2"), "oci://127.0.0.1:5000/vm:1"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.splitlines()[0] == f"dib: error: IMAGE {tmp_path / 'gone.qcow2'} does not exist"
    assert "Traceback" not in err


# -- layouts -------------------------------------------------------------------------

def test_the_artifact_layout_is_the_image_layer_then_its_sidecars(tmp_path):
    found = images.disk_image(write_image(tmp_path))
    config = layout.artifact_config(found)
    sbom = oci.descriptor(layout.SPDX_TYPE, "sha256:" + "2" * 64, 2,
                          {layout.TITLE: "vm.spdx.json"})
    manifest = json.loads(layout.artifact_manifest(found, config, [sbom]))
    assert manifest["mediaType"] == oci.MANIFEST_TYPE
    assert manifest["artifactType"] == layout.ARTIFACT_TYPE
    assert manifest["config"] == {"mediaType": layout.CONFIG_TYPE,
                                  "digest": "sha256:" + sha256(config), "size": len(config)}
    assert manifest["layers"] == [
        {"mediaType": layout.DISK_TYPES["qcow2"], "digest": f"sha256:{found.sha256}",
         "size": found.size, "annotations": {layout.TITLE: "vm.qcow2"}}, sbom]
    assert manifest["annotations"][layout.LAYOUT] == "artifact"
    published = layout.read_manifest(json.dumps(manifest).encode())
    assert (published.layout, published.file_name()) == ("artifact", "vm.qcow2")
    assert published.sidecars == (sbom,)


@pytest.mark.parametrize("size", [0, 1, 511, 512, 10240, 20000])
def test_the_container_disk_layer_is_a_tar_of_disk_name_for_kubevirt(tmp_path, size):
    found = images.disk_image(write_image(tmp_path, size=size))
    stream = layout.DiskTar(found, mtime=1700000000)
    data = stream.read()
    assert len(data) == stream.size and len(data) % layout.RECORD == 0
    stream.seek(0)
    assert layout.stream_digest(stream) == "sha256:" + sha256(data)
    assert stream.read(7) == data[:7]       # rewound again after hashing
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
        assert [(m.name, m.isdir(), m.uid, m.gid, m.mode) for m in members] == [
            ("disk", True, 107, 107, 0o555), ("disk/vm.qcow2", False, 107, 107, 0o440)]
        assert archive.extractfile(members[1]).read() == found.path.read_bytes()
        assert layout.disk_member(archive).name == "disk/vm.qcow2"


def test_the_container_disk_manifest_is_a_plain_oci_image(tmp_path):
    found = images.disk_image(write_image(tmp_path))
    digest = "sha256:" + "3" * 64
    config = layout.container_disk_config(found, digest)
    manifest = json.loads(layout.container_disk_manifest(found, config, digest, 10240))
    assert "artifactType" not in manifest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert manifest["layers"] == [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "digest": digest, "size": 10240}]
    assert manifest["annotations"][layout.SHA256] == found.sha256
    assert manifest["annotations"][layout.LAYOUT] == "containerdisk"
    parsed = json.loads(config)
    assert parsed["rootfs"] == {"type": "layers", "diff_ids": [digest]}
    assert parsed["os"] == "linux"
    assert layout.read_manifest(json.dumps(manifest).encode()).layout == "containerdisk"


@pytest.mark.parametrize("body", [
    b"<html>",
    json.dumps({"schemaVersion": 2, "layers": []}).encode(),
    json.dumps({"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:" + "1" * 64,
                                               "size": 1},
                "layers": [{"mediaType": "application/octet-stream",
                            "digest": "sha256:" + "2" * 64, "size": 1}]}).encode(),
    json.dumps({"schemaVersion": 2, "config": {"mediaType": layout.CONFIG_TYPE,
                                               "digest": "md5:1", "size": 1},
                "layers": [{"mediaType": layout.DISK_TYPES["raw"],
                            "digest": "sha256:" + "2" * 64, "size": 1}]}).encode(),
])
def test_a_manifest_of_something_else_is_not_taken_for_a_disk_image(body):
    with pytest.raises(layout.NotADiskImage):
        layout.read_manifest(body)


# -- pulling from a registry that answers as told ------------------------------------------

def serve_artifact(fake: FakeRegistry, tmp_path: Path, *, damage: bool = False) -> bytes:
    (tmp_path / "src").mkdir()
    image = write_image(tmp_path / "src", size=5000)
    found = images.disk_image(image)
    config = layout.artifact_config(found)
    manifest = layout.artifact_manifest(found, config, [])
    data = bytearray(image.read_bytes())
    if damage:
        data[len(data) // 2] ^= 0xFF
    base = "/v2/images/vm"
    fake.routes[("GET", "/v2/")] = (200, {}, b"{}")
    fake.routes[("GET", f"{base}/manifests/1")] = (200, {}, manifest)
    fake.routes[("GET", f"{base}/blobs/{oci.sha256_digest(config)}")] = (200, {}, config)
    fake.routes[("GET", f"{base}/blobs/sha256:{found.sha256}")] = (200, {}, bytes(data))
    return image.read_bytes()


def test_a_pull_writes_the_image_that_matches_its_digest(fake, tmp_path):
    expected = serve_artifact(fake, tmp_path)
    (tmp_path / "out").mkdir()
    pulled = transfer.pull(f"oci://{fake.host}/images/vm:1", tmp_path / "out", environ={})
    assert pulled.path == tmp_path / "out" / "vm.qcow2"
    assert pulled.path.read_bytes() == expected
    assert pulled.sha256 == sha256(expected)


def test_a_damaged_blob_fails_the_pull_and_leaves_no_file(fake, tmp_path, capsys):
    serve_artifact(fake, tmp_path, damage=True)
    (tmp_path / "out").mkdir()
    status = dib_main(["pull", f"oci://{fake.host}/images/vm:1", "-o",
                       str(tmp_path / "out" / "x.qcow2")])
    err = capsys.readouterr().err
    assert status == 1
    assert "is damaged" in err and "nothing was written" in err and "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []


def test_a_container_disk_pull_checks_the_layer_then_takes_the_disk_out(fake, tmp_path):
    found = images.disk_image(write_image(tmp_path, size=4000))
    stream = layout.DiskTar(found, mtime=0)
    layer = stream.read()
    digest = oci.sha256_digest(layer)
    config = layout.container_disk_config(found, digest)
    base = "/v2/kv/disk"
    fake.routes[("GET", "/v2/")] = (200, {}, b"{}")
    fake.routes[("GET", f"{base}/manifests/2")] = (
        200, {}, layout.container_disk_manifest(found, config, digest, len(layer)))
    fake.routes[("GET", f"{base}/blobs/{oci.sha256_digest(config)}")] = (200, {}, config)
    fake.routes[("GET", f"{base}/blobs/{digest}")] = (200, {}, layer)
    pulled = transfer.pull(f"oci://{fake.host}/kv/disk:2", tmp_path / "got.qcow2", environ={})
    assert (pulled.path, pulled.layout) == (tmp_path / "got.qcow2", "containerdisk")
    assert pulled.path.read_bytes() == found.path.read_bytes()
    # The same layer one byte off: refused before anything is written.
    fake.routes[("GET", f"{base}/blobs/{digest}")] = (200, {}, layer[:-1] + b"\1")
    with pytest.raises(transfer.PullFailed, match="damaged"):
        transfer.pull(f"oci://{fake.host}/kv/disk:2", tmp_path / "again.qcow2", environ={})
    assert not (tmp_path / "again.qcow2").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_tag_that_does_not_exist_is_a_clear_error(fake, tmp_path):
    fake.routes[("GET", "/v2/")] = (200, {}, b"{}")
    with pytest.raises(transfer.PullFailed, match="there is no tag 'nope'") as caught:
        transfer.pull(f"oci://{fake.host}/images/vm:nope", tmp_path, environ={})
    assert caught.value.exit_code == 1


def test_a_registry_that_is_down_is_a_clear_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DibError, match=f"REFERENCE oci://127.0.0.1:{port}/images/vm: .*"
                                       "did not answer") as caught:
        transfer.pull(f"oci://127.0.0.1:{port}/images/vm:1", tmp_path, environ={})
    assert "start the registry" in str(caught.value)


def test_only_a_loopback_registry_is_spoken_to_over_plain_http_unasked():
    ref, _tag = oci.parse_image_ref("oci://192.0.2.7:5000/images/vm:1")
    assert oci.connect(ref, insecure=False, environ={}).base == "https://192.0.2.7:5000"
    assert oci.connect(ref, insecure=True, environ={}).base == "http://192.0.2.7:5000"
    local, _tag = oci.parse_image_ref("oci://localhost:5000/images/vm:1")
    assert oci.connect(local, insecure=False, environ={}).base == "http://localhost:5000"


def test_pulled_sidecars_are_named_after_the_output():
    target = Path("/x/out.qcow2")
    assert transfer._sidecar_path(target, "vm.spdx.json", "vm.qcow2") == Path("/x/out.spdx.json")
    assert transfer._sidecar_path(target, "vm.d.tar", "vm.qcow2") == Path("/x/out.d.tar")


def test_an_output_in_a_missing_directory_is_refused_before_the_registry_is_asked(tmp_path,
                                                                                   capsys):
    # Port 9 on loopback: nothing listens, so reaching the registry would fail differently.
    status = dib_main(["pull", "oci://127.0.0.1:9/images/vm:1", "-o",
                       str(tmp_path / "no" / "vm.qcow2")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"dib: error: -o {tmp_path / 'no' / 'vm.qcow2'}: the directory")


def test_a_blob_that_cannot_be_written_here_is_not_blamed_on_the_registry(fake):
    class Full(io.RawIOBase):
        def write(self, data):
            raise OSError(28, "No space left on device")
    blob = b"x" * 10
    digest = oci.sha256_digest(blob)
    fake.routes[("GET", f"/v2/images/vm/blobs/{digest}")] = (200, {}, blob)
    registry = oci.connect(oci.parse_ref(f"oci://{fake.host}/images/vm"), insecure=False,
                           environ={})
    with pytest.raises(oci.WriteFailed, match="No space left on device"):
        registry.get_blob(digest, 10, Full())
