"""What a build without root cannot do, refused by the preflight before any
slow work: block-device layouts whose nodes need the host's block devices,
and an element set that would bootstrap with debootstrap.  Each check is
fed the build it judges; none needs root."""
from __future__ import annotations

import pytest

from dib.blockdev import checks
from dib.blockdev.config import BlockDeviceConfig
from dib.blockdev.graph import load_config
from dib.blockdev.nodes import LocalLoop, Node
from dib.config.cli import build_parser, config_from_args
from dib.errors import PreflightError
from dib.pipeline import artifacts, preflight as pipeline_preflight
from dib.pipeline.prepare import prepare

LVM_LAYOUT = """
- local_loop: {name: image0}
- partitioning:
    base: image0
    label: mbr
    partitions:
      - {name: root, size: 100%}
- lvm:
    name: lvm
    pvs: [{name: pv, base: root}]
    vgs: [{name: vg, base: [pv]}]
    lvs: [{name: lv_root, base: vg, size: 1GiB}]
- mkfs: {name: mkfs_root, base: lv_root, type: ext4, mount: {mount_point: /}}
"""


def _prepared(elements_env, tmp_path, *elements, types="qcow2", environ=None):
    argv = ["-t", types, "-o", str(tmp_path / "image"), *elements]
    environ = {"ELEMENTS_PATH": str(elements_env.root), **(environ or {})}
    args = build_parser("disk-image-create", "test").parse_args(argv)
    return prepare(config_from_args(args, environ=environ, argv=argv))


# -- block-device layouts ----------------------------------------------------------

def test_an_lvm_layout_is_refused_without_root_naming_the_setting(elements_env, tmp_path):
    prepared = _prepared(elements_env, tmp_path, "debian-minimal", "vm",
                         environ={"DIB_BLOCK_DEVICE_CONFIG": LVM_LAYOUT})
    with pytest.raises(PreflightError) as exc:
        artifacts.check_block_device(prepared, rootless=True)
    message = str(exc.value)
    assert message.startswith("block-device config from DIB_BLOCK_DEVICE_CONFIG: ")
    assert "lvm node 'lvm' needs device-mapper" in message
    # The logical volume is the lvm node's: reported once, with it.
    assert "lv_root" not in message
    assert "build as root" in message


def test_a_layout_of_an_element_is_named_with_its_file(elements_env, tmp_path):
    elements_env.add("lvm-disk", files={"block-device-default.yaml": LVM_LAYOUT})
    prepared = _prepared(elements_env, tmp_path, "debian-minimal", "vm", "lvm-disk")
    with pytest.raises(PreflightError, match=r"^block-device config from element 'lvm-disk' "
                                             r"\(block-device-default\.yaml\): "):
        artifacts.check_block_device(prepared, rootless=True)


def test_lvm_is_refused_without_root_even_where_the_host_has_device_mapper():
    layout = load_config(LVM_LAYOUT)
    checks.preflight(layout, dm_available=True)          # as root, such a host passes it
    with pytest.raises(PreflightError, match="lvm node 'lvm' needs device-mapper"):
        checks.preflight(layout, dm_available=True, rootless=True)


class _Mdraid(Node):
    """A third-party plugin's node, as an mdraid plugin would register it."""
    plugin = "mdraid"


class _Unknown(Node):
    plugin = "iscsi-target"


def test_nodes_the_offline_builder_does_not_make_are_refused_without_root():
    layout = BlockDeviceConfig([LocalLoop(name="image0", base=None),
                                _Mdraid(name="md0", base="image0"),
                                _Unknown(name="target", base="image0")])
    refused = checks.rootless_problems(layout)
    assert refused == ["mdraid node 'md0' needs the md driver (for a software RAID array)",
                       "iscsi-target node 'target' needs a block device of the host's kernel "
                       "(a loop, device-mapper or md device)"]


@pytest.mark.parametrize("element", ["block-device-efi", "block-device-gpt",
                                     "block-device-mbr"])
def test_the_layouts_the_refusal_suggests_are_built_without_root(elements_env, tmp_path,
                                                                 element):
    prepared = _prepared(elements_env, tmp_path, "debian-minimal", "vm", element)
    artifacts.check_block_device(prepared, rootless=True)
    assert prepared.disk.source == f"element '{element}' (block-device-default.yaml)"


def test_the_built_in_default_layout_is_built_without_root(elements_env, tmp_path):
    prepared = _prepared(elements_env, tmp_path, "debian-minimal", "vm")
    artifacts.check_block_device(prepared, rootless=True)
    assert prepared.disk.config.filesystems


def test_a_tree_output_reads_no_layout_to_refuse(elements_env, tmp_path):
    prepared = _prepared(elements_env, tmp_path, "debian-minimal", types="tar",
                         environ={"DIB_BLOCK_DEVICE_CONFIG": LVM_LAYOUT})
    artifacts.check_block_device(prepared, rootless=True)
    assert prepared.disk.config is None


# -- the bootstrap -------------------------------------------------------------------

def _bootstrap(prepared, *, have_mmdebstrap=True):
    pipeline_preflight.check_rootless_bootstrap(prepared, have_mmdebstrap=have_mmdebstrap)


def test_without_mmdebstrap_the_bootstrap_is_refused(elements_env, tmp_path):
    prepared = _prepared(elements_env, tmp_path, "debian-minimal", types="tar")
    with pytest.raises(PreflightError) as exc:
        _bootstrap(prepared, have_mmdebstrap=False)
    assert "element 'debootstrap' (root.d/08-debootstrap) would bootstrap the tree with " \
           "debootstrap because mmdebstrap is not installed" in str(exc.value)
    assert exc.value.hint == "apt-get install mmdebstrap, or build as root"


def test_a_suite_script_in_the_environment_is_refused(elements_env, tmp_path):
    prepared = _prepared(elements_env, tmp_path, "debian-minimal", types="tar",
                         environ={"DIB_DEBIAN_DEBOOTSTRAP_SCRIPT": "/srv/sid-script"})
    with pytest.raises(PreflightError, match=r"because DIB_DEBIAN_DEBOOTSTRAP_SCRIPT is set "
                                             r"\(to '/srv/sid-script'\)") as exc:
        _bootstrap(prepared)
    assert exc.value.hint.startswith("unset DIB_DEBIAN_DEBOOTSTRAP_SCRIPT")


def test_an_element_that_sets_a_suite_script_is_named(elements_env, tmp_path):
    elements_env.add("old-suite", files={
        "environment.d/10-suite": "export DIB_DEBIAN_DEBOOTSTRAP_SCRIPT=/srv/old-suite\n"})
    prepared = _prepared(elements_env, tmp_path, "debian-minimal", "old-suite", types="tar")
    with pytest.raises(PreflightError, match=r"because element 'old-suite' sets "
                                             r"DIB_DEBIAN_DEBOOTSTRAP_SCRIPT in "
                                             r"environment\.d/10-suite") as exc:
        _bootstrap(prepared)
    assert exc.value.hint == "leave element 'old-suite' out, or build as root"


@pytest.mark.parametrize("line", [
    'export DIB_DEBIAN_DEBOOTSTRAP_SCRIPT="${DIB_DEBIAN_DEBOOTSTRAP_SCRIPT:-}"',
    "DIB_DEBIAN_DEBOOTSTRAP_SCRIPT=$DIB_DEBIAN_DEBOOTSTRAP_SCRIPT; export X=1",
    "export DIB_DEBIAN_DEBOOTSTRAP_SCRIPT="])
def test_an_element_that_passes_the_callers_value_on_is_not_refused(elements_env, tmp_path,
                                                                    line):
    elements_env.add("passes-on", files={"environment.d/10-suite": line + "\n"})
    _bootstrap(_prepared(elements_env, tmp_path, "debian-minimal", "passes-on", types="tar"))


def test_a_suite_script_appended_by_an_element_is_refused(elements_env, tmp_path):
    elements_env.add("appends", files={
        "environment.d/10-suite": "DIB_DEBIAN_DEBOOTSTRAP_SCRIPT+=/srv/x\n"})
    with pytest.raises(PreflightError, match="element 'appends' sets"):
        _bootstrap(_prepared(elements_env, tmp_path, "debian-minimal", "appends", types="tar"))


def test_an_os_without_the_debootstrap_element_needs_no_mmdebstrap(elements_env, tmp_path):
    elements_env.os_element()
    _bootstrap(_prepared(elements_env, tmp_path, "test-os", types="tar"),
               have_mmdebstrap=False)


# -- the order of the preflight --------------------------------------------------------

def test_the_preflight_refuses_the_build_before_looking_at_the_host(elements_env, tmp_path,
                                                                    monkeypatch):
    """Run as an ordinary user, the refusals come first: what the build asks
    for cannot work on any host, so no host fix is offered for it."""
    def host_checked():
        raise AssertionError("the host was checked before the build's own settings")
    monkeypatch.setattr(pipeline_preflight.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(pipeline_preflight, "_check_rootless", host_checked)
    layout = _prepared(elements_env, tmp_path, "debian-minimal", "vm",
                       environ={"DIB_BLOCK_DEVICE_CONFIG": LVM_LAYOUT})
    with pytest.raises(PreflightError, match="lvm node 'lvm'"):
        pipeline_preflight.preflight(layout)
    script = _prepared(elements_env, tmp_path, "debian-minimal", types="tar",
                       environ={"DIB_DEBIAN_DEBOOTSTRAP_SCRIPT": "/srv/sid-script"})
    with pytest.raises(PreflightError, match="would bootstrap the tree with debootstrap"):
        pipeline_preflight.preflight(script)
