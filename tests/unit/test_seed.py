"""NoCloud seed disks, read back with mtools and blkid (no mount, no root)."""
from __future__ import annotations

import email

import pytest
import yaml

from dib import runner
from dib.blockdev.assemble import mtools_env
from dib.testing.seed import SeedError, default_meta_data, make_seed, with_ssh_key

needs_mtools = pytest.mark.skipif(
    runner.which("mkfs.fat") is None or runner.which("mtype") is None,
    reason="needs dosfstools and mtools")

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0a2V5 dib-boot"


def _read(seed, name: str) -> bytes:
    return runner.run(["mtype", "-i", str(seed), f"::{name}"], env=mtools_env(),
                      binary=True).stdout


def _names(seed) -> list[str]:
    listing = runner.run(["mdir", "-b", "-i", str(seed), "::"], env=mtools_env()).stdout
    return sorted(line.strip().lstrip(":/") for line in listing.splitlines() if line.strip())


@needs_mtools
def test_seed_holds_the_files_under_the_cidata_label(tmp_path):
    user_data = b"#cloud-config\nhostname: seeded\n"
    meta_data = b"instance-id: mine\n"
    seed = make_seed(tmp_path / "seed.img", {"user-data": user_data, "meta-data": meta_data})
    assert _names(seed) == ["meta-data", "user-data"]
    assert _read(seed, "user-data") == user_data
    assert _read(seed, "meta-data") == meta_data
    label = runner.run(["mlabel", "-s", "-i", str(seed), "::"], env=mtools_env()).stdout
    assert "CIDATA" in label
    if runner.which("blkid"):
        probed = runner.run(["blkid", "-o", "export", str(seed)]).stdout.splitlines()
        assert "LABEL=CIDATA" in probed and "TYPE=vfat" in probed


@needs_mtools
def test_meta_data_defaults_to_an_instance_id_and_hostname(tmp_path):
    user_data = b"#!/bin/sh\necho hi\n"
    seed = make_seed(tmp_path / "seed.img", {"user-data": user_data})
    meta = yaml.safe_load(_read(seed, "meta-data"))
    assert meta["local-hostname"] == "dib-boot"
    assert meta["instance-id"].startswith("iid-dib-boot-")
    # a changed user-data is a new instance; the same one is the same instance
    assert default_meta_data(user_data) == _read(seed, "meta-data")
    assert default_meta_data(b"other") != default_meta_data(user_data)


@needs_mtools
def test_a_big_user_data_fits_and_the_seed_is_made_anew(tmp_path):
    big = bytes(range(256)) * 8192          # 2 MiB, binary
    path = tmp_path / "seed.img"
    path.write_text("left over")
    make_seed(path, {"user-data": big, "network-config": b"version: 2\n"})
    assert _read(path, "user-data") == big
    assert _read(path, "network-config") == b"version: 2\n"


@pytest.mark.parametrize("files, message", [
    ({"meta-data": b"x"}, "needs user-data"),
    ({"user-data": b"x", "vendor-data": b"y"}, "not vendor-data"),
])
def test_bad_seed_contents(tmp_path, files, message):
    with pytest.raises(SeedError, match=message):
        make_seed(tmp_path / "seed.img", files)


def test_ssh_key_alone_makes_a_cloud_config():
    config = yaml.safe_load(with_ssh_key(None, KEY))
    assert config == {"disable_root": False, "ssh_authorized_keys": [KEY]}
    assert with_ssh_key(None, KEY).startswith(b"#cloud-config\n")


def test_ssh_key_joins_a_cloud_config_keeping_its_keys():
    user = b"#cloud-config\nssh_authorized_keys: [ssh-rsa AAAA mine]\npackages: [htop]\n"
    merged = with_ssh_key(user, KEY)
    assert merged.startswith(b"#cloud-config\n")
    config = yaml.safe_load(merged)
    assert config["ssh_authorized_keys"] == ["ssh-rsa AAAA mine", KEY]
    assert config["packages"] == ["htop"] and config["disable_root"] is False
    assert yaml.safe_load(with_ssh_key(merged, KEY))["ssh_authorized_keys"] == \
        ["ssh-rsa AAAA mine", KEY]


def test_ssh_key_with_a_script_makes_a_mime_archive():
    script = b"#!/bin/sh\necho from-user\n"
    message = email.message_from_bytes(with_ssh_key(script, KEY))
    assert message.is_multipart()
    parts = message.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/cloud-config"]
    assert parts[0].get_payload(decode=True) == script
    config = yaml.safe_load(parts[1].get_payload(decode=True))
    assert config["ssh_authorized_keys"] == [KEY]
    assert "list(append)" in parts[1]["Merge-Type"]


def test_ssh_key_joins_an_existing_mime_archive():
    archive = (
        b'Content-Type: multipart/mixed; boundary="b"\nMIME-Version: 1.0\n\n'
        b"--b\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho one\n--b--\n")
    message = email.message_from_bytes(with_ssh_key(archive, KEY))
    assert [p.get_content_type() for p in message.get_payload()] == \
        ["text/x-shellscript", "text/cloud-config"]


@pytest.mark.parametrize("text, message", [
    (b"#cloud-config\nkey: [unclosed\n", "ud.yaml: not valid YAML"),
    (b"#cloud-config\n- a list\n", "must be a YAML mapping"),
    (b"#cloud-config\nssh_authorized_keys: one-key\n", "must be a list"),
])
def test_bad_cloud_config_names_the_file(text, message):
    with pytest.raises(SeedError, match=message):
        with_ssh_key(text, KEY, source="ud.yaml")
