"""A build reads its block-device layout once: in the preflight, before any
slow work; the build proper gets that reading, ids and all."""
from __future__ import annotations

from dataclasses import replace

import pytest

from dib import blockdev
from dib.blockdev.problems import ConfigProblems
from dib.config.cli import build_parser, config_from_args
from dib.pipeline import artifacts, build
from dib.pipeline.preflight import preflight
from dib.pipeline.prepare import prepare
from dib.runtime.workspace import Workspace


def _prepared(elements_env, tmp_path, *elements, environ=None):
    argv = ["-n", "-t", "raw", "-o", str(tmp_path / "image"), *elements]
    environ = {"ELEMENTS_PATH": str(elements_env.root), **(environ or {})}
    args = build_parser("disk-image-create", "test").parse_args(argv)
    return prepare(config_from_args(args, environ=environ, argv=argv))


@pytest.fixture
def reads(monkeypatch):
    """Where each block-device config read came from."""
    seen = []
    real = blockdev.load_config

    def counting(*args, **kwargs):
        seen.append(kwargs.get("origin"))
        return real(*args, **kwargs)
    monkeypatch.setattr(blockdev, "load_config", counting)
    return seen


def test_one_build_reads_its_layout_once(elements_env, tmp_path, reads):
    elements_env.os_element()
    prepared = _prepared(elements_env, tmp_path, "test-os", "block-device-gpt")
    artifacts.check_block_device(prepared)            # the preflight's checks
    tools = dict(artifacts.required_tools(prepared))
    workspace = Workspace(tmp_path / "workspace")
    workspace.root.mkdir()
    build.hand_over(prepared, workspace)
    config, disk = build.take_over(workspace)         # in the build proper
    inner = artifacts.disk_artifacts(replace(prepare(config), disk=disk))
    assert reads == ["block-device config from element 'block-device-gpt' "
                     "(block-device-default.yaml)"]
    assert tools["sfdisk"] == "fdisk"
    assert inner.plan.root_fs.fs_uuid == prepared.disk.plan.root_fs.fs_uuid
    assert inner.config.nodes["root"].partuuid == prepared.disk.config.nodes["root"].partuuid


def test_a_bad_layout_stops_the_preflight(elements_env, tmp_path, reads):
    elements_env.os_element(files={"block-device-default.yaml":
                                   "- local_loop: {name: image0}\n"
                                   "- mkfs: {name: mkfs_root, base: image0, type: ext5,\n"
                                   "         mount: {mount_point: /}}\n"})
    prepared = _prepared(elements_env, tmp_path, "test-os")
    with pytest.raises(ConfigProblems, match="type 'ext5'") as exc:
        preflight(prepared)
    assert str(exc.value).startswith("block-device config from element 'test-os' "
                                     "(block-device-default.yaml): 1 problem")
    assert len(reads) == 1


def test_no_disk_output_reads_no_layout(elements_env, tmp_path, reads):
    elements_env.os_element()
    argv_types = _prepared(elements_env, tmp_path, "test-os", "block-device-gpt")
    tar = replace(argv_types, config=replace(argv_types.config, image_types=("tar",)))
    artifacts.check_block_device(tar)
    assert artifacts.disk_artifacts(tar).config is None and reads == []
