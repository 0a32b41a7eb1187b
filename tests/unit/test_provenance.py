"""SLSA v1 provenance beside the image, and dib verify (docs/provenance.md)."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from dib import provenance
from dib.cache import CacheStore, Checkpoints, keys, products
from dib.cache.outputs import OutputCache
from dib.cli.main import main as dib_main
from dib.config import manifest
from dib.config.cli import build_parser, config_from_args
from dib.config.settings import SETTINGS, recorded_argv
from dib.errors import ConfigError
from dib.provenance import (BuildFacts, DigestsAhead, build_statement, subject_digests,
                            write_provenance)
from dib.provenance import verify as verify_module
from dib.sbom.inventory import deb_purl
from provenance_schema import errors

STATUS = """\
Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2

Package: old-tool
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
"""

EPOCH = 1700000000


def fake_tree(root: Path) -> Path:
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS)
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    return root


def make_element(root: Path, name: str, text: str = "data\n") -> Path:
    element = root / name
    (element / "static/etc").mkdir(parents=True)
    (element / "static/etc" / f"{name}.conf").write_text(text)
    (element / "pkg-map").write_text('{"family": {}}\n')
    (element / "install.d").mkdir()
    hook = element / "install.d" / "50-hook"
    hook.write_text("#!/bin/bash\necho hi\n")
    hook.chmod(0o755)
    return element


def config_for(argv: list[str], environ: dict | None = None):
    args = build_parser("dib", "").parse_args(argv)
    return config_from_args(args, environ=environ or {}, argv=argv)


def make_facts(tmp_path: Path, **changes) -> BuildFacts:
    packages, distro = provenance.read_packages(fake_tree(tmp_path / "tree"))
    elements_dir = tmp_path / "elements"
    config = config_for(["-o", str(tmp_path / "out" / "vm"), "-t", "qcow2,tar", "-p", "vim",
                         "--cache-dir", str(tmp_path / "cache"), "debian-minimal", "vm"])
    facts = BuildFacts(
        config=config, subjects={"vm.tar": "b" * 64, "vm.qcow2": "a" * 64},
        elements=[(n, make_element(elements_dir, n)) for n in ("base", "debian-minimal", "vm")],
        env={"DIB_DISTRIBUTION_MIRROR": "http://user:secret@mirror.invalid:8080/debian",
             "DIB_RELEASE": "bookworm", "DISTRO_NAME": "debian"},
        packages=packages, distro=distro, dib_version="1.2.3", host_arch="amd64",
        build_id="dib-build-abc123", started=EPOCH + 10, finished=EPOCH + 52)
    return replace(facts, **changes)


def dependencies(document: dict, kind: str) -> list[dict]:
    return [d for d in document["predicate"]["buildDefinition"]["resolvedDependencies"]
            if d["annotations"]["kind"] == kind]


# -- the statement -------------------------------------------------------------

def test_statement_is_valid_in_toto_v1_slsa_v1(tmp_path):
    document = build_statement(make_facts(tmp_path))
    assert errors(document) == []
    assert document["_type"] == "https://in-toto.io/Statement/v1"
    assert document["predicateType"] == "https://slsa.dev/provenance/v1"
    definition = document["predicate"]["buildDefinition"]
    assert definition["buildType"] == provenance.BUILD_TYPE
    assert document["predicate"]["runDetails"]["builder"] == {
        "id": provenance.BUILDER_ID, "version": {"dib": "1.2.3"}}
    assert definition["internalParameters"] == {"dibVersion": "1.2.3", "hostArch": "amd64"}


def test_the_schema_rejects_what_the_specifications_require(tmp_path):
    """The schema has teeth: a statement without a field in-toto or SLSA
    requires, or with a subject lacking its digest, fails it."""
    good = build_statement(make_facts(tmp_path))
    cases = [
        lambda d: d.pop("predicateType"),
        lambda d: d.__setitem__("subject", []),
        lambda d: d["subject"][0].pop("digest"),
        lambda d: d["subject"][0]["digest"].__setitem__("sha256", "xyz"),
        lambda d: d["predicate"]["buildDefinition"].pop("buildType"),
        lambda d: d["predicate"]["buildDefinition"].pop("externalParameters"),
        lambda d: d["predicate"]["runDetails"]["builder"].pop("id"),
        lambda d: d["predicate"]["runDetails"]["metadata"].__setitem__("startedOn", "today"),
    ]
    for number, spoil in enumerate(cases):
        document = json.loads(json.dumps(good))
        spoil(document)
        assert errors(document), f"case {number} passed the schema"


def test_subjects_are_each_output_by_sha256_in_name_order(tmp_path):
    document = build_statement(make_facts(tmp_path))
    assert document["subject"] == [{"name": "vm.qcow2", "digest": {"sha256": "a" * 64}},
                                   {"name": "vm.tar", "digest": {"sha256": "b" * 64}}]


def test_external_parameters_are_the_request_and_the_recorded_settings(tmp_path):
    facts = make_facts(tmp_path)
    params = build_statement(facts)["predicate"]["buildDefinition"]["externalParameters"]
    assert params["elements"] == ["debian-minimal", "vm"]
    assert params["types"] == ["qcow2", "tar"]
    assert params["ramdisk"] is False
    # exactly the settings the registry marks as shaping the image
    assert set(params["settings"]) == {s.name for s in SETTINGS if s.recorded} - {"image_types"}
    assert "cache_dir" not in params["settings"] and "logfile" not in params["settings"]
    assert params["settings"]["packages"] == ["vim"]
    assert params["settings"]["image_name"] == str(tmp_path / "out" / "vm")
    json.dumps(params)   # every value is plain JSON


def test_element_digests_are_made_of_the_cache_keys_file_digests(tmp_path):
    """Each element's digest is computed from the very per-file digests the
    phase cache keys on: its data files as element_data_inputs names them,
    its hooks as phase_inputs' tree_inputs names them."""
    facts = make_facts(tmp_path)
    found = {d["name"]: d for d in dependencies(build_statement(facts), "element")}
    assert list(found) == ["base", "debian-minimal", "vm"]
    for name, path in facts.elements:
        cache_inputs = {k.split("/", 1)[1]: v for k, v in
                        keys.element_data_inputs([(name, path)]).items()}
        cache_inputs.update(keys.tree_inputs(path / "install.d", "install.d"))
        assert set(cache_inputs) == {"pkg-map", f"static/etc/{name}.conf", "install.d/50-hook"}
        expected = hashlib.sha256("".join(f"{rel}\0{digest}\n" for rel, digest
                                          in sorted(cache_inputs.items())).encode())
        assert found[name]["digest"] == {"sha256": expected.hexdigest()}
        assert found[name]["annotations"]["path"] == str(path)


def test_an_element_digest_follows_content_and_modes_not_location(tmp_path):
    element = make_element(tmp_path / "a", "e")
    first = keys.directory_digest(element)
    moved = make_element(tmp_path / "b", "e")
    assert keys.directory_digest(moved) == first
    (element / "install.d" / "50-hook").chmod(0o644)
    assert keys.directory_digest(element) != first
    (element / "install.d" / "50-hook").chmod(0o755)
    assert keys.directory_digest(element) == first
    (element / "static/etc/e.conf").write_text("changed\n")
    assert keys.directory_digest(element) != first
    # bytecode caches from running an element's tests do not count
    (moved / "tests" / "__pycache__").mkdir(parents=True)
    (moved / "tests" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert keys.directory_digest(moved) == first


def test_mirror_and_suite_are_recorded_without_credentials(tmp_path):
    (mirror,) = dependencies(build_statement(make_facts(tmp_path)), "distribution-mirror")
    assert mirror["uri"] == "http://mirror.invalid:8080/debian"
    assert mirror["annotations"]["suite"] == "bookworm"
    assert "secret" not in json.dumps(build_statement(make_facts(tmp_path / "again")))
    no_mirror = build_statement(make_facts(tmp_path / "none", env={"DIB_RELEASE": "bookworm"}))
    assert dependencies(no_mirror, "distribution-mirror") == []


def test_packages_are_the_images_dpkg_packages_by_purl(tmp_path):
    facts = make_facts(tmp_path)
    debs = dependencies(build_statement(facts), "deb")
    assert [d["name"] for d in debs] == ["bash", "libc6"]    # not the config-files one
    bash = debs[0]
    assert bash["uri"] == "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12"
    assert bash["uri"] == deb_purl(facts.packages[0], facts.distro)   # the SBOM's purl
    assert bash["annotations"]["version"] == "5.2.15-2+b2"


def test_metadata_names_the_build_and_its_times(tmp_path):
    metadata = build_statement(make_facts(tmp_path))["predicate"]["runDetails"]["metadata"]
    assert metadata == {"invocationId": "dib-build-abc123",
                        "startedOn": "2023-11-14T22:13:30Z",
                        "finishedOn": "2023-11-14T22:14:12Z"}


def test_source_date_epoch_makes_the_statement_reproducible(tmp_path):
    first = make_facts(tmp_path / "one", source_date_epoch=str(EPOCH))
    second = replace(first, build_id="dib-build-other", started=EPOCH + 999,
                     finished=EPOCH + 1999)
    a = write_provenance(tmp_path / "a.json", first).read_bytes()
    b = write_provenance(tmp_path / "b.json", second).read_bytes()
    assert a == b
    metadata = json.loads(a)["predicate"]["runDetails"]["metadata"]
    assert metadata == {"startedOn": "2023-11-14T22:13:20Z",
                        "finishedOn": "2023-11-14T22:13:20Z"}


def test_subject_digests_reuse_known_ones_and_read_the_rest(tmp_path):
    kernel = tmp_path / "deploy.kernel"
    kernel.write_bytes(b"kernel bytes")
    restored = tmp_path / "deploy.qcow2"
    restored.write_bytes(b"qcow2 bytes")
    found = provenance.subject_digests([restored, kernel], {"deploy.qcow2": "c" * 64})
    assert found == {"deploy.qcow2": "c" * 64,
                     "deploy.kernel": hashlib.sha256(b"kernel bytes").hexdigest()}


# -- where the digests come from on a warm build ----------------------------

def test_the_output_cache_keeps_each_files_sha256(tmp_path):
    cache = OutputCache(tmp_path / "cache")
    image = tmp_path / "out" / "vm.qcow2"
    image.parent.mkdir()
    image.write_bytes(b"qcow2")
    cache.store("k", [image], sha256={"vm.qcow2": "d" * 64})
    assert cache.restore("k", image.parent) == [image]
    assert cache.sha256("k") == {"vm.qcow2": "d" * 64}


def test_an_entry_stored_without_digests_gets_them_recorded(tmp_path):
    cache = OutputCache(tmp_path / "cache")
    image = tmp_path / "vm.raw"
    image.write_bytes(b"raw")
    cache.store("k", [image])
    assert cache.sha256("k") == {}
    cache.record_sha256("k", {"vm.raw": "e" * 64, "other": "f" * 64})
    assert cache.restore("k", tmp_path) == [image]
    assert cache.sha256("k") == {"vm.raw": "e" * 64}


def test_checkpoints_name_what_a_step_wrote_beside_the_image(tmp_path):
    """The kernel and initramfs a ramdisk's cleanup.d writes are subjects too:
    the cache chain says which files a step made, or put back on a hit."""
    out = tmp_path / "out"
    out.mkdir()
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    store = CacheStore(tmp_path / "cache")
    chain = Checkpoints(store)
    chain.image = out / "deploy"
    inputs = chain.internal_inputs("cleanup", {"v": "1"})
    key = chain.key("cleanup", inputs)
    before = products.snapshot(chain.image)
    (out / "deploy.kernel").write_text("kernel\n")
    layer = tmp_path / "layer"
    layer.mkdir()
    chain.store_layer(key, "cleanup", inputs, layer, None, hooks, "b1", beside_before=before)
    assert chain.products[key] == [out / "deploy.kernel"]
    chain.close()

    (out / "deploy.kernel").unlink()
    again = Checkpoints(store)
    again.image = chain.image
    assert again.lookup(key, hooks) is not None
    assert again.products[key] == [out / "deploy.kernel"]
    again.close()


# -- the setting ---------------------------------------------------------------

def test_provenance_is_on_by_default_and_turned_off_three_ways(tmp_path):
    assert config_for(["x"]).provenance is True
    assert config_for(["--no-provenance", "x"]).provenance is False
    assert config_for(["x"], {"DIB_PROVENANCE": "0"}).provenance is False
    assert config_for(["x"], {"DIB_PROVENANCE": "1"}).provenance is True
    path = tmp_path / "images.yaml"
    path.write_text("- {imagename: a, elements: [x], provenance: false}\n"
                    "- {imagename: b, elements: [x], provenance: true}\n")
    first, second = manifest.load_manifests([path], environ={"DIB_PROVENANCE": "0"})
    assert first.provenance is False and second.provenance is True
    assert "--no-provenance" in manifest.equivalent_argv({"provenance": False,
                                                          "elements": ["x"]})
    # it does not shape the image: left out of the recorded arguments
    assert recorded_argv(["--no-provenance", "x"]) == ["x"]


def test_a_bad_provenance_value_names_the_variable():
    with pytest.raises(ConfigError, match="DIB_PROVENANCE.*'maybe'"):
        config_for(["x"], {"DIB_PROVENANCE": "maybe"})


# -- dib verify ----------------------------------------------------------------

@pytest.fixture
def built(tmp_path):
    """An image directory as a build leaves it: vm.qcow2 and its statement."""
    out = tmp_path / "out"
    out.mkdir()
    qcow2 = out / "vm.qcow2"
    qcow2.write_bytes(os.urandom(4096))
    digest = hashlib.sha256(qcow2.read_bytes()).hexdigest()
    write_provenance(out / "vm.provenance.json",
                     make_facts(tmp_path, subjects={"vm.qcow2": digest}))
    return qcow2, digest


def run_verify(capsys, *argv: str) -> tuple[int, str, str]:
    status = dib_main(["verify", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_verify_ok_names_the_digest(built, capsys):
    qcow2, digest = built
    status, out, err = run_verify(capsys, qcow2)
    assert status == 0, err
    assert out.count("\n") == 1 and out.startswith("OK ")
    assert f"sha256:{digest}" in out and "vm.provenance.json" in out


def test_verify_a_copy_elsewhere_with_provenance(built, tmp_path, capsys):
    qcow2, digest = built
    copy = tmp_path / "copy.img"
    copy.write_bytes(qcow2.read_bytes())
    status, out, _ = run_verify(capsys, copy, "--provenance",
                                qcow2.with_name("vm.provenance.json"))
    assert status == 0 and "(as vm.qcow2)" in out


def test_verify_fails_when_one_byte_changed(built, capsys):
    qcow2, digest = built
    data = bytearray(qcow2.read_bytes())
    data[100] ^= 0xFF
    qcow2.write_bytes(bytes(data))
    status, out, err = run_verify(capsys, qcow2)
    assert status == 1 and out == ""
    assert "does not match" in err and digest in err
    assert "Traceback" not in err


def test_verify_fails_for_a_file_that_is_not_a_subject(built, capsys):
    qcow2, _ = built
    other = qcow2.with_name("vm.raw")
    other.write_bytes(b"something else")
    status, _, err = run_verify(capsys, other)
    assert status == 1
    assert "is not a subject" in err and "vm.qcow2" in err


def test_verify_finds_the_statement_of_a_multi_part_name(built, capsys):
    qcow2, _ = built
    docker = qcow2.with_name("vm.docker.tar")
    docker.write_bytes(qcow2.read_bytes())
    status, _, err = run_verify(capsys, docker)
    assert status == 0, err


@pytest.mark.parametrize("text, why", [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"_type": "https://in-toto.io/Statement/v0.1"}', "_type"),
    ('{"_type": "https://in-toto.io/Statement/v1", "predicateType": "x", "subject": []}',
     "predicateType"),
    ('{"_type": "https://in-toto.io/Statement/v1", '
     '"predicateType": "https://slsa.dev/provenance/v1", "subject": []}', "no subject"),
    ('{"_type": "https://in-toto.io/Statement/v1", '
     '"predicateType": "https://slsa.dev/provenance/v1", "subject": [{"name": "a"}]}',
     "no sha256"),
])
def test_verify_rejects_a_file_that_is_not_provenance(built, tmp_path, capsys, text, why):
    qcow2, _ = built
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    status, _, err = run_verify(capsys, qcow2, "--provenance", bad)
    assert status == 2
    assert why in err and "not a provenance statement" in err
    assert "Traceback" not in err


def test_verify_refuses_an_image_given_as_the_statement(built, capsys, monkeypatch):
    qcow2, _ = built
    monkeypatch.setattr(verify_module, "MAX_STATEMENT_BYTES", 1024)
    status, _, err = run_verify(capsys, qcow2, "--provenance", qcow2)
    assert status == 2 and "too big" in err


def test_verify_usage_errors(built, tmp_path, capsys):
    qcow2, _ = built
    status, _, err = run_verify(capsys, tmp_path / "missing.qcow2")
    assert status == 2 and "does not exist" in err
    lonely = tmp_path / "lonely.qcow2"
    lonely.write_bytes(b"x")
    status, _, err = run_verify(capsys, lonely)
    assert status == 2 and "no provenance beside" in err and "--provenance" in err
    status, _, err = run_verify(capsys, qcow2, "--provenance", tmp_path / "nope.json")
    assert status == 2 and "does not exist" in err
    status, _, err = run_verify(capsys, tmp_path)
    assert status == 2 and "not a file" in err
    status, _, err = run_verify(capsys)
    assert status == 2


def test_digests_read_ahead_are_those_of_the_files_as_they_are_now(tmp_path):
    kernel, initramfs, gone = tmp_path / "ipa.kernel", tmp_path / "ipa.initramfs", tmp_path / "x"
    kernel.write_bytes(b"kernel")
    initramfs.write_bytes(b"initramfs")
    gone.write_bytes(b"x")
    ahead = DigestsAhead()
    try:
        ahead.start([kernel, initramfs, gone, tmp_path])      # a directory is not read
        assert ahead.known([kernel, initramfs, gone, tmp_path]) == {
            name: hashlib.sha256(data).hexdigest() for name, data in
            (("ipa.kernel", b"kernel"), ("ipa.initramfs", b"initramfs"), ("x", b"x"))}
        known = ahead.known([kernel])
        initramfs.write_bytes(b"written again")             # changed after it was read
        gone.unlink()
        assert ahead.known([kernel, initramfs, gone, tmp_path]) == known
        # the provenance reads what was not known ahead
        assert subject_digests([kernel, initramfs], ahead.known([kernel, initramfs])) == {
            "ipa.kernel": hashlib.sha256(b"kernel").hexdigest(),
            "ipa.initramfs": hashlib.sha256(b"written again").hexdigest()}
    finally:
        ahead.close()
