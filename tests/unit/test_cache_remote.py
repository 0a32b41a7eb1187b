"""The remote phase cache: key→tag mapping, manifest layout, credentials, and
how the client copes with a registry that answers badly (a tiny in-process
HTTP server stands in for one; real registries are in the functional tests)."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import shutil
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Callable

import pytest
from fake_registry import FakeRegistry

from dib.cache import oci, remote
from dib.cache.chain import Checkpoints, _chain
from dib.cache.store import CacheStore
from dib.config.build import load_build_config
from dib.errors import ConfigError, DibError
from dib.pipeline.report import BuildReport, StepReport

KEY = "5c390d8592be" + "0" * 52


# -- key → tag -------------------------------------------------------------------

def test_a_phase_key_is_its_own_tag():
    assert oci.tag_for(KEY) == KEY


@pytest.mark.parametrize("key", ["a/b:c", "x" * 129, ".starts-with-dot", "", "ünïcode"])
def test_other_keys_map_to_a_valid_tag_deterministically(key):
    tag = oci.tag_for(key)
    assert oci.TAG_RE.match(tag) and len(tag) <= 128
    assert tag == oci.tag_for(key)


def test_keys_that_differ_only_in_bad_characters_get_different_tags():
    assert oci.tag_for("a/b") != oci.tag_for("a:b")
    assert oci.tag_for("x" * 129) != oci.tag_for("x" * 130)


# -- the setting ------------------------------------------------------------------

def test_cache_remote_is_read_from_the_environment():
    config = load_build_config({}, elements=["x"], environ={
        "DIB_CACHE_REMOTE": "oci://192.0.2.10:5000/team/dib-cache",
        "DIB_CACHE_REMOTE_MODE": "read"})
    assert config.cache_remote == "oci://192.0.2.10:5000/team/dib-cache"
    assert config.cache_remote_mode == "read"
    assert not config.cache_remote_insecure and not config.cache_remote_required


@pytest.mark.parametrize("value, says", [
    ("https://host/repo", "oci://HOST[:PORT]/REPO"),
    ("oci://host", "a host and a repository"),
    ("oci://host:port/repo", "HOST or HOST:PORT"),
    ("oci://user:secret@host/repo", "credentials do not go in the URL"),
    ("oci://host/Upper", "is not a repository name"),
])
def test_a_bad_cache_remote_says_what_is_wrong(value, says):
    with pytest.raises(ConfigError) as caught:
        load_build_config({}, elements=["x"], environ={"DIB_CACHE_REMOTE": value})
    assert "DIB_CACHE_REMOTE" in str(caught.value) and says in str(caught.value)


def test_a_bad_cache_remote_mode_lists_the_accepted_ones():
    with pytest.raises(ConfigError, match="read, write, readwrite"):
        load_build_config({}, elements=["x"], environ={"DIB_CACHE_REMOTE_MODE": "push"})


@pytest.mark.parametrize("url, insecure, base", [
    ("oci://192.0.2.10/r", False, "https://192.0.2.10"),
    ("oci://192.0.2.10:5000/r", True, "http://192.0.2.10:5000"),
    ("oci://127.0.0.1:5000/r", False, "http://127.0.0.1:5000"),
    ("oci://localhost/r", False, "http://localhost"),
    ("oci://[::1]:5000/r", False, "http://[::1]:5000"),
    ("oci://10.0.0.1:5000/r", False, "https://10.0.0.1:5000"),
])
def test_plain_http_only_when_asked_or_on_a_loopback_address(url, insecure, base):
    cache = remote.from_settings(url, mode="readwrite", insecure=insecure, environ={})
    assert cache.registry.base == base


# -- credentials ------------------------------------------------------------------

def auth_file(path: Path, entries: dict[str, tuple[str, str]]) -> Path:
    path.write_text(json.dumps({"auths": {
        name: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
        for name, (u, p) in entries.items()}}))
    return path


def test_credentials_are_found_by_host_and_port(tmp_path):
    files = [auth_file(tmp_path / "a.json", {"https://192.0.2.11:5000/v1/": ("u1", "p:1"),
                                             "192.0.2.12": ("u2", "p2")})]
    assert oci.credentials_for("192.0.2.11:5000", files) == ("u1", "p:1")
    assert oci.credentials_for("192.0.2.12", files) == ("u2", "p2")
    assert oci.credentials_for("192.0.2.11", files) is None


def test_registry_auth_file_comes_before_the_docker_config(tmp_path):
    podman = auth_file(tmp_path / "auth.json", {"192.0.2.11": ("podman", "x")})
    (tmp_path / "docker").mkdir()
    auth_file(tmp_path / "docker" / "config.json", {"192.0.2.11": ("docker", "y")})
    files = oci.auth_files({"REGISTRY_AUTH_FILE": str(podman),
                            "DOCKER_CONFIG": str(tmp_path / "docker")})
    assert oci.credentials_for("192.0.2.11", files) == ("podman", "x")


def test_an_unreadable_auth_file_is_skipped(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    good = auth_file(tmp_path / "good.json", {"192.0.2.11": ("u", "p")})
    assert oci.credentials_for("192.0.2.11", [bad, tmp_path / "missing", good]) == ("u", "p")


# -- manifest layout ----------------------------------------------------------------

META = {"parent": None, "step": "install", "inputs": {"file:install.d/50-x": "abc"},
        "build": "dib-build-1", "output": "f" * 64, "digest": "local", "size": 123,
        "created": 1.0, "format": 1, "key": KEY}


LAYER = ("layer", "sha256:" + "1" * 64, 4096)
EXTRAS = ("extras", "sha256:" + "2" * 64, 512)


def test_an_entry_is_one_manifest_with_its_record_as_config_and_its_tars_as_layers():
    config, body = remote.entry_manifest(KEY, META, [LAYER, EXTRAS], "zstd")
    manifest = json.loads(body)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == oci.MANIFEST_TYPE
    assert manifest["config"] == {"mediaType": remote.CONFIG_TYPE,
                                  "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                                  "size": len(config)}
    tar = "application/vnd.oci.image.layer.v1.tar+zstd"
    assert manifest["layers"] == [
        {"mediaType": tar, "digest": LAYER[1], "size": 4096,
         "annotations": {"dib.cache.part": "layer"}},
        {"mediaType": tar, "digest": EXTRAS[1], "size": 512,
         "annotations": {"dib.cache.part": "extras"}}]
    assert manifest["annotations"]["dib.cache.step"] == "install"
    record = json.loads(config)
    # What the receiving store works out for itself does not travel.
    assert record == {"parent": None, "step": "install", "inputs": META["inputs"],
                      "build": "dib-build-1", "output": "f" * 64, "key": KEY}
    assert remote.parse_manifest(body) == (manifest["config"], *manifest["layers"])
    remote.check_meta(record, KEY)


def test_an_entry_without_extras_has_its_layer_alone():
    _config, body = remote.entry_manifest(KEY, META, [LAYER], "zstd")
    _c, layer, extras = remote.parse_manifest(body)
    assert layer["digest"] == LAYER[1] and extras is None


def test_an_entry_of_the_one_tar_format_is_still_read():
    _config, body = remote.entry_manifest(KEY, META, [LAYER], "zstd")
    manifest = json.loads(body)
    del manifest["layers"][0]["annotations"]
    _c, layer, extras = remote.parse_manifest(json.dumps(manifest).encode())
    assert layer["digest"] == LAYER[1] and extras is None


def test_a_gzip_entry_says_so():
    _config, body = remote.entry_manifest(KEY, META, [LAYER], "gzip")
    assert json.loads(body)["layers"][0]["mediaType"].endswith("tar+gzip")


def mutated(change: Callable[[dict], None]) -> bytes:
    manifest = json.loads(remote.entry_manifest(KEY, META, [LAYER, EXTRAS], "zstd")[1])
    change(manifest)
    return json.dumps(manifest).encode()


@pytest.mark.parametrize("body", [
    b"<html>not found</html>",
    mutated(lambda m: m.update(schemaVersion=1)),
    mutated(lambda m: m["config"].update(mediaType="application/vnd.oci.image.config.v1+json")),
    mutated(lambda m: m["layers"].append(dict(m["layers"][0]))),
    mutated(lambda m: m["layers"].reverse()),
    mutated(lambda m: m["layers"][1]["annotations"].update({"dib.cache.part": "layer"})),
    mutated(lambda m: m.update(layers=[])),
    mutated(lambda m: m["layers"][0].update(mediaType="application/octet-stream")),
    mutated(lambda m: m["layers"][0].update(digest="md5:abc")),
    mutated(lambda m: m["layers"][0].update(size=-1)),
])
def test_anything_but_a_dib_entry_manifest_is_refused(body):
    with pytest.raises(remote.BadEntry):
        remote.parse_manifest(body)


def test_a_record_for_another_key_is_refused():
    with pytest.raises(remote.BadEntry, match="another key"):
        remote.check_meta(dict(META, key="0" * 64), KEY)


# -- a registry that answers badly -----------------------------------------------------

class FakeCacheRegistry(FakeRegistry):
    """The fake registry with the remote cache's entries."""

    def cache(self, **kwargs) -> remote.RemoteCache:
        return remote.from_settings(f"oci://{self.host}/dib/cache", mode="readwrite",
                                    insecure=False, environ=kwargs.get("environ", {}))

    def serve(self, digest: str, body: bytes) -> None:
        self.routes[("GET", f"/v2/dib/cache/blobs/{digest}")] = (200, {}, body)

    def serve_entry(self, key: str, layer: bytes, *, layer_digest: str | None = None,
                    extras: bytes | None = None) -> None:
        digest = layer_digest or oci.sha256_digest(layer)
        blobs = [("layer", digest, len(layer))]
        if extras is not None:
            blobs.append(("extras", oci.sha256_digest(extras), len(extras)))
            self.serve(blobs[1][1], extras)
        config, manifest = remote.entry_manifest(key, META, blobs, "gzip")
        self.routes[("GET", f"/v2/dib/cache/manifests/{key}")] = (200, {}, manifest)
        self.serve(oci.sha256_digest(config), config)
        self.serve(digest, layer)

    def blobs_fetched(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for method, path, _h in self.requests
                if method == "GET" and "/blobs/" in path]


@pytest.fixture
def fake():
    server = FakeCacheRegistry()
    yield server
    server.close()


def layer_tar(tmp_path: Path) -> bytes:
    (tmp_path / "src" / "layer" / "etc").mkdir(parents=True)
    (tmp_path / "src" / "layer" / "etc" / "motd").write_text("hi\n")
    remote.pack(tmp_path / "src", tmp_path / "blob", "gzip", ("layer",))
    return (tmp_path / "blob").read_bytes()


def extras_tar(tmp_path: Path) -> bytes:
    (tmp_path / "src" / "products" / "image.d").mkdir(parents=True)
    (tmp_path / "src" / "products" / "image.d" / "dib_environment").write_text("x\n")
    remote.pack(tmp_path / "src", tmp_path / "extras", "gzip", ("hooks-delta", "products"))
    return (tmp_path / "extras").read_bytes()


def test_a_blob_whose_bytes_do_not_match_its_digest_is_discarded(fake, tmp_path, caplog):
    good = layer_tar(tmp_path)
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    fake.serve_entry(KEY, bytes(damaged), layer_digest=oci.sha256_digest(good))
    store = CacheStore(tmp_path / "cache")
    cache = fake.cache()
    with caplog.at_level(logging.WARNING):
        assert cache.pull(KEY, store) is None
    assert "damaged" in caplog.text
    assert store.get(KEY) is None
    assert list(store.tmp_dir.iterdir()) == []
    # One bad blob does not condemn the registry; the entry is replaced on push.
    assert cache.reads and KEY in cache.damaged


@pytest.mark.parametrize("served", [b"", b"short", None])
def test_a_blob_of_the_wrong_length_is_refused(fake, served):
    expected = b"the blob as it should be"
    digest = oci.sha256_digest(expected)
    fake.routes[("GET", f"/v2/dib/cache/blobs/{digest}")] = (
        200, {}, expected + b"more" if served is None else served)
    registry = fake.cache().registry
    with pytest.raises(oci.DigestMismatch):
        registry.get_blob(digest, len(expected), io.BytesIO())


def test_a_blob_that_matches_is_written_out(fake):
    expected = b"the blob as it should be"
    digest = oci.sha256_digest(expected)
    fake.routes[("GET", f"/v2/dib/cache/blobs/{digest}")] = (200, {}, expected)
    out = io.BytesIO()
    fake.cache().registry.get_blob(digest, len(expected), out)
    assert out.getvalue() == expected


def test_a_missing_entry_is_a_plain_miss(fake, tmp_path, caplog):
    cache = fake.cache()
    with caplog.at_level(logging.WARNING):
        assert cache.pull(KEY, CacheStore(tmp_path / "cache")) is None
    assert caplog.text == "" and cache.reads


@pytest.mark.parametrize("answer", [
    (500, {}, b"internal error"),
    (200, {}, b"this is not a manifest"),
    (0, {}, b"SSH-2.0-OpenSSH\r\n"),
    (403, {}, b"{}"),
])
def test_a_registry_answering_garbage_costs_one_warning_then_is_left_alone(
        fake, tmp_path, caplog, answer):
    fake.routes[("GET", f"/v2/dib/cache/manifests/{KEY}")] = answer
    other = "1" * 64
    fake.routes[("GET", f"/v2/dib/cache/manifests/{other}")] = answer
    store = CacheStore(tmp_path / "cache")
    cache = fake.cache()
    with caplog.at_level(logging.WARNING):
        assert cache.pull(KEY, store) is None
        assert cache.pull(other, store) is None
    assert len(caplog.records) == 1
    assert "building locally without it" in caplog.text
    assert len(fake.requests) == 1
    assert not cache.reads and not cache.writes


def test_a_registry_that_does_not_answer_in_time_costs_one_warning(fake, tmp_path, caplog):
    fake.delay = 2.0
    cache = fake.cache()
    cache.registry.timeout = 0.3
    store = CacheStore(tmp_path / "cache")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert cache.pull(KEY, store) is None
        assert cache.pull("1" * 64, store) is None
    assert time.monotonic() - started < 1.5
    assert len(caplog.records) == 1 and "building locally without it" in caplog.text


def test_a_registry_that_is_not_there_costs_one_warning(tmp_path, caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cache = remote.from_settings(f"oci://127.0.0.1:{port}/dib/cache", mode="readwrite",
                                 insecure=False, environ={})
    store = CacheStore(tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        assert cache.pull(KEY, store) is None
        assert cache.pull("1" * 64, store) is None
    assert len(caplog.records) == 1 and "did not answer" in caplog.text
    with pytest.raises(DibError, match="does not answer"):
        cache.check()


def test_a_bearer_challenge_is_answered_with_a_token_got_with_the_stored_credentials(
        fake, tmp_path, caplog):
    auth = auth_file(tmp_path / "auth.json", {fake.host: ("builder", "s3cret-pass")})
    realm = f"http://{fake.host}/token"
    fake.routes[("GET", "/v2/")] = (401, {"WWW-Authenticate": f'Bearer realm="{realm}",'
                                          f'service="fake",scope="repository:dib/cache:pull"'},
                                    b"{}")
    fake.routes[("GET", "/token")] = (200, {}, json.dumps({"token": "tok-123"}).encode())
    cache = fake.cache(environ={"REGISTRY_AUTH_FILE": str(auth)})
    with caplog.at_level(logging.DEBUG):
        cache.registry.ping()   # a 401 is an answer: the registry is there
        fake.routes[("GET", f"/v2/dib/cache/manifests/{KEY}")] = (
            401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake"'}, b"{}")
        with pytest.raises(oci.RegistryError, match="refused"):
            cache.registry.get_manifest(KEY)
    token_requests = [r for r in fake.requests if r[1].startswith("/token")]
    assert token_requests
    assert token_requests[0][2]["Authorization"] == "Basic " + base64.b64encode(
        b"builder:s3cret-pass").decode()
    assert "service=fake" in token_requests[0][1]
    retried = fake.requests[-1]
    assert retried[1] == f"/v2/dib/cache/manifests/{KEY}"
    assert retried[2]["Authorization"] == "Bearer tok-123"
    assert "s3cret" not in caplog.text and "tok-123" not in caplog.text


def test_an_upload_that_leads_to_another_host_is_refused(fake):
    fake.routes[("POST", "/v2/dib/cache/blobs/uploads/")] = (
        202, {"Location": "http://198.51.100.7/upload/1"}, b"")
    with pytest.raises(oci.RegistryError, match="another host"):
        fake.cache().registry.put_blob(oci.sha256_digest(b"x"), 1, b"x")


# -- what the build says -------------------------------------------------------------

def test_the_report_tells_local_and_remote_hits_misses_and_pushes_apart():
    report = BuildReport(image_name="image", elements=["x"], steps=[
        StepReport("root", "k1", cached=True, cache="local-hit"),
        StepReport("install", "k2", cached=True, cache="remote-hit",
                   pulled={"bytes": 3 * 1024 * 1024, "seconds": 2.0}),
        StepReport("finalise", "k3", cache="miss", reason="no entry for this step yet",
                   pushed={"bytes": 2048, "seconds": 0.5}),
    ])
    assert report.steps[0].explanation() == "reused from cache"
    assert report.steps[1].explanation() == "pulled from the remote cache (3.0 MiB in 2.0 s)"
    assert report.steps[2].explanation() == "rebuilt: no entry for this step yet"
    table = report.table().splitlines()
    assert table[2].split()[-1] == "hit" and "remote" not in table[2]
    assert table[3].endswith("remote hit")
    assert table[4].endswith("miss, pushed")
    steps = json.loads(json.dumps(report.as_dict()))["steps"]
    assert [s["cache"] for s in steps] == ["local-hit", "remote-hit", "miss"]
    assert steps[2]["pushed"] == {"bytes": 2048, "seconds": 0.5}


def test_credentials_never_go_to_a_token_service_elsewhere_over_plain_http(fake, tmp_path):
    auth = auth_file(tmp_path / "auth.json", {fake.host: ("builder", "s3cret-pass")})
    # Another origin (same server, other name): plain HTTP there gets no password.
    realm = f"http://localhost:{fake.server.server_address[1]}/token"
    fake.routes[("GET", f"/v2/dib/cache/manifests/{KEY}")] = (
        401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake"'}, b"{}")
    fake.routes[("GET", "/token")] = (200, {}, json.dumps({"token": "anonymous"}).encode())
    cache = fake.cache(environ={"REGISTRY_AUTH_FILE": str(auth)})
    with pytest.raises(oci.RegistryError):
        cache.registry.get_manifest(KEY)
    [token_request] = [r for r in fake.requests if r[1].startswith("/token")]
    assert "Authorization" not in token_request[2]
    assert fake.requests[-1][2]["Authorization"] == "Bearer anonymous"


# -- layers fetched only when the tree is needed ---------------------------------------

def lazy_checkpoints(fake: FakeCacheRegistry, tmp_path: Path) -> tuple[Checkpoints, Path]:
    checkpoints = Checkpoints(CacheStore(tmp_path / "cache"), fake.cache())
    (tmp_path / "out").mkdir()
    checkpoints.image = tmp_path / "out" / "image"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    return checkpoints, hooks


def test_a_pulled_step_brings_its_record_and_extras_at_once_and_its_layer_when_asked(
        fake, tmp_path):
    layer, extras = layer_tar(tmp_path), extras_tar(tmp_path)
    fake.serve_entry(KEY, layer, extras=extras)
    checkpoints, hooks = lazy_checkpoints(fake, tmp_path)
    store = checkpoints.store
    with checkpoints.making(KEY, "install", {}, hooks) as found:
        assert found == store.entries_dir / KEY / "layer"
    # The record chains the tree on; the products are back beside the image.
    assert checkpoints.tree_id == _chain(None, META["output"])
    assert (tmp_path / "out" / "image.d" / "dib_environment").read_text() == "x\n"
    assert oci.sha256_digest(layer) not in fake.blobs_fetched()
    assert not found.exists() and store.get(KEY) is None
    assert checkpoints.pulled[KEY].layer is False

    assert checkpoints.fetch_deferred() == [KEY]
    assert (found / "etc" / "motd").read_text() == "hi\n"
    entry = store.get(KEY)
    assert (entry.path / "products" / "image.d" / "dib_environment").is_file()
    assert entry.meta["remote"] == f"oci://{fake.host}/dib/cache"
    pulled = checkpoints.pulled[KEY]
    assert pulled.layer is True and pulled.bytes > len(layer) + len(extras)
    assert checkpoints.fetch_deferred() == []
    checkpoints.close()
    assert list(store.tmp_dir.iterdir()) == []


def test_a_deferred_layer_that_arrives_damaged_makes_its_step_here_on_the_next_walk(
        fake, tmp_path, caplog):
    good = layer_tar(tmp_path)
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    fake.serve_entry(KEY, bytes(damaged), layer_digest=oci.sha256_digest(good))
    checkpoints, hooks = lazy_checkpoints(fake, tmp_path)
    with checkpoints.making(KEY, "install", {}, hooks) as found:
        assert found is not None     # only the record came: nothing is known yet
    with caplog.at_level(logging.WARNING), pytest.raises(remote.LayerUnavailable) as caught:
        checkpoints.fetch_deferred()
    assert caught.value.keys == [KEY]
    assert "damaged" in caplog.text and "building locally without it" not in caplog.text
    assert checkpoints.store.get(KEY) is None
    assert list(checkpoints.store.tmp_dir.iterdir()) == []
    assert checkpoints.remote_misses[KEY] == "the remote cache's copy was damaged"

    checkpoints.start_over()
    assert checkpoints.tree_id is None
    fake.requests.clear()
    with checkpoints.making(KEY, "install", {}, hooks) as found:
        assert found is None
    assert fake.requests == []     # not asked again: the push replaces it
    assert checkpoints.remote.reads
    checkpoints.close()


def test_an_entry_of_the_one_tar_format_is_fetched_whole_at_once(fake, tmp_path):
    (tmp_path / "old" / "layer").mkdir(parents=True)
    (tmp_path / "old" / "layer" / "motd").write_text("old\n")
    (tmp_path / "old" / "products").mkdir()
    (tmp_path / "old" / "products" / "image.kernel").write_text("k\n")
    remote.pack(tmp_path / "old", tmp_path / "old.tar", "gzip")
    blob = (tmp_path / "old.tar").read_bytes()
    fake.serve_entry(KEY, blob)
    manifest = json.loads(fake.routes[("GET", f"/v2/dib/cache/manifests/{KEY}")][2])
    del manifest["layers"][0]["annotations"]
    fake.routes[("GET", f"/v2/dib/cache/manifests/{KEY}")] = (
        200, {}, json.dumps(manifest).encode())
    checkpoints, hooks = lazy_checkpoints(fake, tmp_path)
    with checkpoints.making(KEY, "cleanup", {}, hooks) as found:
        assert (found / "motd").read_text() == "old\n"
    assert (tmp_path / "out" / "image.kernel").read_text() == "k\n"
    assert checkpoints.deferred == {}
    checkpoints.close()


# -- finished images --------------------------------------------------------------------

OUT_KEY = "a" * 64


def serve_outputs(fake: FakeCacheRegistry, paths: list[Path], tmp_path: Path,
                  record: dict | None = None, **change) -> list[tuple]:
    staging = tmp_path / "packed"
    staging.mkdir(exist_ok=True)
    blobs = [remote._output_blob(path, staging) for path in paths]
    config, manifest = remote.outputs_manifest(
        OUT_KEY, record or {"sha256": {}}, [b[1] for b in blobs])
    if change:
        config = json.dumps(dict(json.loads(config), **change)).encode()
        manifest = json.loads(manifest)
        manifest["config"].update(digest=oci.sha256_digest(config), size=len(config))
        manifest = json.dumps(manifest).encode()
    fake.routes[("GET", f"/v2/dib/cache/manifests/{OUT_KEY}")] = (200, {}, manifest)
    fake.serve(oci.sha256_digest(config), config)
    for blob, (_name, digest, _size, _type) in blobs:
        fake.serve(digest, blob.read_bytes())
    return [b[1] for b in blobs]


@pytest.mark.skipif(not shutil.which("zstd"), reason="zstd is not installed")
def test_finished_images_come_back_whole_and_a_sparse_disk_stays_sparse(fake, tmp_path):
    made = tmp_path / "made"
    made.mkdir()
    qcow2 = made / "image.qcow2"
    qcow2.write_bytes(os.urandom(300_000))
    raw = made / "image.raw"
    with open(raw, "wb") as out:
        out.truncate(64 << 20)
        out.seek(1 << 20)
        out.write(b"boot sector" * 100)
    served = serve_outputs(fake, [qcow2, raw], tmp_path,
                           record={"facts": {"packages": []}, "sha256": {}})
    # A dense file travels as it is, a file of holes compressed.
    assert [t for *_rest, t in served] == [remote.OUTPUT_TYPES[None],
                                           remote.OUTPUT_TYPES["zstd"]]
    got = tmp_path / "got"
    got.mkdir()
    files, record, transfer = fake.cache().pull_outputs(OUT_KEY, got, "image")
    assert [f.name for f in files] == ["image.qcow2", "image.raw"]
    assert (got / "image.qcow2").read_bytes() == qcow2.read_bytes()
    assert (got / "image.raw").read_bytes() == raw.read_bytes()
    assert (got / "image.raw").stat().st_blocks * 512 < 8 << 20
    assert record["facts"] == {"packages": []}
    assert transfer.bytes > sum(size for _n, _d, size, _t in served)   # and the record


def accept_uploads(fake: FakeCacheRegistry) -> None:
    """Canned answers of a registry taking every blob and manifest."""
    base = "/v2/dib/cache"
    fake.routes[("POST", f"{base}/blobs/uploads/")] = (
        202, {"Location": f"{base}/blobs/uploads/session"}, b"")
    fake.routes[("PUT", f"{base}/blobs/uploads/session")] = (201, {}, b"")
    fake.routes[("PUT", f"{base}/manifests/{OUT_KEY}")] = (201, {}, b"")


def serve_what_was_pushed(fake: FakeCacheRegistry) -> None:
    base = "/v2/dib/cache"
    for (method, path), body in fake.bodies.items():
        if method == "PUT" and path.startswith(f"{base}/blobs/uploads/session?digest="):
            fake.serve(urllib.parse.unquote(path.split("digest=", 1)[1]), body)
    fake.routes[("GET", f"{base}/manifests/{OUT_KEY}")] = (
        200, {}, fake.bodies[("PUT", f"{base}/manifests/{OUT_KEY}")])


def test_pushed_images_are_pulled_back_with_their_record(fake, tmp_path):
    made = tmp_path / "made"
    made.mkdir()
    image = made / "image.qcow2"
    image.write_bytes(os.urandom(50_000))
    accept_uploads(fake)
    record = {"sha256": {"image.qcow2": "f" * 64}, "facts": {"packages": []}}
    (tmp_path / "push").mkdir()
    pushed = fake.cache().push_outputs(OUT_KEY, [image], record, tmp_path / "push")
    assert pushed is not None and pushed.bytes == 50_000
    serve_what_was_pushed(fake)
    got = tmp_path / "got"
    got.mkdir()
    files, back, _transfer = fake.cache().pull_outputs(OUT_KEY, got, "image")
    assert files == [got / "image.qcow2"] and files[0].read_bytes() == image.read_bytes()
    assert back["sha256"] == record["sha256"] and back["facts"] == record["facts"]


def test_images_the_registry_has_already_are_not_pushed_again(fake, tmp_path):
    image = tmp_path / "image.qcow2"
    image.write_bytes(b"disk")
    serve_outputs(fake, [image], tmp_path)
    accept_uploads(fake)
    assert fake.cache().push_outputs(OUT_KEY, [image], {}, tmp_path) is None
    assert [m for m, *_rest in fake.requests] == ["GET"]


def test_a_read_only_remote_cache_pushes_no_images(fake, tmp_path):
    image = tmp_path / "image.qcow2"
    image.write_bytes(b"disk")
    accept_uploads(fake)
    cache = fake.cache()
    cache.mode = "read"
    assert cache.push_outputs(OUT_KEY, [image], {}, tmp_path) is None
    assert fake.requests == []


def test_a_damaged_finished_image_is_discarded_and_the_registry_kept(fake, tmp_path, caplog):
    made = tmp_path / "image.qcow2"
    made.write_bytes(os.urandom(10_000))
    [(_name, digest, _size, _type)] = serve_outputs(fake, [made], tmp_path)
    fake.serve(digest, b"\0" * 10_000)
    got = tmp_path / "got"
    got.mkdir()
    cache = fake.cache()
    with caplog.at_level(logging.WARNING):
        assert cache.pull_outputs(OUT_KEY, got, "image") is None
    assert "damaged" in caplog.text and cache.reads and OUT_KEY in cache.damaged


@pytest.mark.parametrize("files", [["../image.qcow2"], ["other.qcow2"], ["image.qcow2", "x"],
                                   "image.qcow2"])
def test_outputs_that_would_land_anywhere_but_beside_the_image_are_refused(
        fake, tmp_path, caplog, files):
    made = tmp_path / "image.qcow2"
    made.write_bytes(b"disk")
    serve_outputs(fake, [made], tmp_path, files=files)
    got = tmp_path / "got"
    got.mkdir()
    cache = fake.cache()
    with caplog.at_level(logging.WARNING):
        assert cache.pull_outputs(OUT_KEY, got, "image") is None
    assert list(got.iterdir()) == [] and made.read_bytes() == b"disk"
    assert "building locally without it" in caplog.text and not cache.reads


def test_a_step_whose_layer_was_not_needed_says_so():
    step = StepReport("root", "k1", cached=True, cache="remote-hit",
                      pulled={"bytes": 900, "seconds": 0.01, "layer": False})
    assert step.explanation().startswith("pulled from the remote cache (its record, 900 B")
    report = BuildReport(image_name="image", elements=["x"], steps=[step])
    assert report.table().splitlines()[2].endswith("remote hit (record)")
