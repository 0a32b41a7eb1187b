import configparser
import importlib
import re
from pathlib import Path

import pytest

from dib.blockdev import checks, nodes
from dib.blockdev.graph import load_config
from dib.blockdev.layout import unsized_plan
from dib.blockdev.problems import ConfigProblems
from dib.errors import PreflightError

ELEMENTS = Path(__file__).resolve().parents[2] / "elements"


def shipped_layout(element: str) -> str:
    """The block-device YAML a shipped element gives."""
    return (ELEMENTS / element / "block-device-default.yaml").read_text()


def edit(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` (which must be there) replaced by ``new``."""
    assert old in text, f"{old!r} is not in the layout any more"
    return text.replace(old, new)


EFI = shipped_layout("block-device-efi")

GRAPH = """
- local_loop:
    name: image0
- partitioning:
    base: image0
    name: mbr
    label: mbr
    partitions:
      - name: root
        flags: [boot, primary]
        size: 100%
- mkfs:
    name: mkfs_root
    base: root
    type: ext4
- mount:
    name: mount_root
    base: mkfs_root
    mount_point: /
- fstab:
    name: fstab_root
    base: mount_root
"""


def test_default_config_is_dibs():
    cfg = load_config()
    assert [n.name for n in cfg.loops] == ["image0"]
    root = unsized_plan(cfg).root_fs
    assert (root.name, root.label, root.type) == ("mkfs_root", "cloudimg-rootfs", "ext4")
    assert cfg.mount_points() == ["/"]
    assert cfg.partition_table is None


def test_tree_names_and_lifting():
    cfg = load_config(EFI)
    assert set(cfg.nodes) >= {"image0", "partitioning_image0", "ESP", "BSP", "root",
                              "mkfs_ESP", "mkfs_root", "mount_mkfs_root",
                              "fstab_mount_mkfs_root"}
    assert cfg.nodes["mkfs_root"].base == "root"
    assert cfg.nodes["root"].number == 3
    assert cfg.nodes["ESP"].type == nodes.ESP_GUID
    assert cfg.nodes["mkfs_ESP"].label == "MKFS_ESP"   # vfat labels are upper-cased
    assert cfg.mount_points() == ["/", "/boot/efi"]
    plan = unsized_plan(cfg)
    assert plan.esp.name == "ESP" and plan.bios_boot.name == "BSP"
    assert plan.esp_fs.name == "mkfs_ESP" and plan.boot_fs is plan.root_fs
    order = cfg.order()
    assert order.index("image0") < order.index("root") < order.index("mkfs_root")


def test_graph_and_tree_give_same_shape():
    cfg = load_config(GRAPH)
    plan = unsized_plan(cfg)
    assert plan.root_fs.name == "mkfs_root"
    assert cfg.nodes["root"].bootable and cfg.nodes["root"].primary
    assert plan.hook_environment() == {"DIB_ROOT_LABEL": "cloudimg-rootfs",
                                       "DIB_ROOT_FSTYPE": "ext4",
                                       "DIB_BOOT_LABEL": "cloudimg-rootfs"}


def test_overrides_patch_mkfs_root_only_where_unset():
    root = load_config(None, root_label="myroot", fs_type="ext3",
                       mkfs_options="-i 4096").nodes["mkfs_root"]
    assert (root.label, root.type, root.opts) == ("myroot", "ext3", "-i 4096")
    explicit = load_config(GRAPH, root_label="other", fs_type="ext3").nodes["mkfs_root"]
    assert explicit.type == "ext4"      # YAML wins, like DIB
    assert explicit.label == "other"    # label not in the YAML: the param fills it
    xfs = load_config(None, fs_type="xfs").nodes["mkfs_root"]
    assert xfs.label == "img-rootfs"


def _err(text, match):
    """The one problem a config with one mistake has (no follow-on problems)."""
    with pytest.raises(ConfigProblems) as exc:
        load_config(text)
    problems = exc.value.problems
    assert len(problems) == 1, str(exc.value)
    assert re.search(match, problems[0].line()), problems[0].line()
    assert problems[0].hint or "expected" in problems[0].text
    return problems[0]


def test_every_mistake_is_reported_in_document_order():
    text = edit(EFI, "size: 550MiB", "size: 550 parsecs")
    text = edit(text, "type: vfat", "type: vfat\n          label: efipartition")
    text = edit(text, "type: ext4", "type: ext5")
    with pytest.raises(ConfigProblems) as exc:
        load_config(text, origin="block-device config from element 'x'")
    lines = str(exc.value).splitlines()
    assert lines[0] == "block-device config from element 'x': 3 problems"
    assert lines[1].startswith("  node 'ESP' (partition): key 'size': invalid size "
                               "'550 parsecs'")
    assert lines[2] == ("  node 'mkfs_ESP' (mkfs): key 'label': label 'EFIPARTITION' is 12 "
                        "characters, more than vfat allows (11)")
    assert lines[3] == "    hint: shorten it to 11 characters or fewer"
    assert lines[4] == "  node 'mkfs_root' (mkfs): key 'type': unknown filesystem type 'ext5'"
    assert lines[5] == "    hint: did you mean 'ext4'?"
    assert len(lines) == 6


def test_a_whole_config_problem_comes_after_the_nodes_and_hides_none():
    no_loop = GRAPH.replace("- local_loop:\n    name: image0\n", "") \
        .replace("type: ext4", "type: ext5")
    with pytest.raises(ConfigProblems) as exc:
        load_config(no_loop)
    lines = [p.line() for p in exc.value.problems]
    assert lines[0].startswith("node 'mbr' (partitioning): key 'base': base 'image0' is not")
    assert lines[1] == "node 'mkfs_root' (mkfs): key 'type': unknown filesystem type 'ext5'"
    assert lines[2] == "there is no local_loop"


def test_a_broken_root_mount_is_reported_as_itself():
    """Not as 'nothing is mounted at /', which would send the user elsewhere."""
    problem = _err(GRAPH.replace("mount_point: /", "mount_point: root"),
                   "node 'mount_root' \\(mount\\): key 'mount_point': mount_point 'root'")
    assert "absolute path" in problem.text


def test_a_node_that_cannot_be_read_is_the_one_problem():
    _err("- local_loop: {name: image0, mkfs: {name: mkfs_root, type: ext4, mount: /}}\n",
         "node 'mount_mkfs_root' \\(mount\\): the value of 'mount' must be a map, not str")


def test_names_and_bases_that_are_not_text_are_one_problem_each():
    _err(GRAPH.replace("    base: image0\n", "    base: [image0]\n"),
         "node 'mbr' \\(partitioning\\): key 'base': base \\['image0'\\] is not text")
    _err(edit(EFI, "name: BSP", "name: 12"),
         "partition #2 of node 'partitioning_image0' \\(partitioning\\): key 'name': "
         "name 12 is not text")
    _err(edit(EFI, "      - name: BSP\n", "      - type: 'EF02'\n"), "#2 .*: has no name")


def test_two_keys_in_one_item():
    _err("- local_loop: {name: image0}\n  mkfs: {type: ext4}\n", "2 top-level keys")


def test_unknown_plugin_suggests():
    e = _err("- local_lop: {name: image0}\n", "unknown plugin 'local_lop'")
    assert "did you mean 'local_loop'" in e.text


def test_unknown_base():
    _err(GRAPH.replace("base: mkfs_root", "base: mkfs_rot"), "base 'mkfs_rot' is not defined")


def test_wrong_kind_of_base():
    _err(GRAPH.replace("base: mkfs_root", "base: root"), "is a partition, not a mkfs")


def test_duplicate_name():
    _err(GRAPH + "- mkfs: {name: mkfs_root, base: image0, type: ext4}\n",
         "node 'mkfs_root' \\(mkfs\\): key 'name': the name is already used")


def test_duplicate_label():
    text = edit(EFI, "type: vfat", "type: vfat\n          label: root")
    text = edit(text, "type: ext4", "type: ext4\n          label: ROOT")
    _err(text, "already used")


def test_label_rules():
    _err(GRAPH.replace("type: ext4", "type: ext4\n    label: abcdefghijklmnopq"),
         "more than ext4 allows \\(16\\)")
    _err(GRAPH.replace("type: ext4", "type: ext4\n    label: 'my root'"),
         "characters that cannot be used")
    _err(edit(EFI, "type: vfat", "type: vfat\n          label: efipartition"),
         "vfat allows \\(11\\)")


def test_partition_rules():
    _err(edit(EFI, "type: 'EF02'", "type: 'EF02'\n        flags: [primary]"),
         "primary flag only applies to mbr")
    _err(edit(EFI, "        size: 8MiB\n", ""),
         "node 'BSP' \\(partition\\): key 'size': has no size")
    _err(edit(EFI, "type: 'EF02'", "type: 'ZZ99'"), "gpt type 'ZZ99' is not known")
    _err(GRAPH.replace("flags: [boot, primary]", "flags: [boot, primary]\n        type: 0x05"),
         "mbr type")
    _err(GRAPH.replace("flags: [boot, primary]", "flags: [bootable]"), "unknown flag")
    _err(GRAPH.replace("flags: [boot, primary]", "flags: 5"), "key 'flags': flags 5 is not a list")
    _err(GRAPH.replace("size: 100%", "size: 12 parsecs"), "invalid size")


def test_mkfs_rules():
    _err(GRAPH.replace("type: ext4", "type: ext5"), "unknown filesystem type 'ext5'")
    typo = _err(GRAPH.replace("    type: ext4\n", "    type: ext4\n    lable: x\n"),
                "key 'lable': unknown option")
    assert typo.hint == "did you mean 'label'?"
    _err(GRAPH.replace("mount_point: /", "mount_point: /srv"), "no filesystem is mounted at /")
    _err(GRAPH.replace("mount_point: /", "mount_point: relative"), "not an absolute path")


def test_two_tables_on_one_loop():
    extra = ("- partitioning:\n    base: image0\n    name: second\n    label: gpt\n"
             "    partitions:\n      - name: other\n        size: 1MiB\n")
    _err(GRAPH + extra, "already has the partition table")


def test_a_second_fstab_for_one_mount_is_refused():
    """fstab_text writes one line per mount: the second entry would be dropped."""
    second = GRAPH + "- fstab:\n    name: fstab_again\n    base: mount_root\n" \
                     "    options: noatime\n"
    _err(second, "node 'fstab_again' \\(fstab\\): key 'base': mount 'mount_root' already "
                 "has the fstab entry 'fstab_root'")


def test_nothing_can_follow_a_partition_of_100_percent():
    """Found when the config is read, not when the disk is laid out after the build."""
    text = EFI + "      - {name: swap, type: '8200', size: 1GiB}\n"
    _err(text, "node 'root' \\(partition\\): key 'size': 100% takes all the space left, "
               "so none remains for 'swap'")
    mbr = GRAPH.replace("flags: [boot, primary]\n        size: 100%",
                        "flags: [boot, primary]\n        size: 100 %\n"
                        "      - name: data\n        size: 1GiB")
    _err(mbr, "node 'root' \\(partition\\): key 'size': 100% takes all")
    fine = edit(EFI, "size: 100%", "size: 90%") + "      - {name: swap, size: 100%}\n"
    assert load_config(fine).nodes["swap"].number == 4


def test_not_a_list():
    _err("local_loop: {name: x}\n", "must be a YAML list")


def test_lvm_validates_but_preflight_refuses_without_device_mapper():
    text = """
- local_loop: {name: image0}
- partitioning:
    base: image0
    label: gpt
    partitions:
      - {name: root, size: 100%}
- lvm:
    name: lvm
    pvs: [{name: pv, base: root}]
    vgs: [{name: vg, base: [pv]}]
    lvs: [{name: lv_root, base: vg, size: 1GiB}]
- mkfs: {name: mkfs_root, base: lv_root, type: ext4, mount: {mount_point: /}}
"""
    cfg = load_config(text)
    assert cfg.lvms and cfg.nodes["mkfs_root"].base == "lv_root"
    with pytest.raises(PreflightError, match="device-mapper"):
        checks.preflight(cfg, dm_available=False)
    checks.preflight(cfg, dm_available=True)


def test_device_mapper_probe(tmp_path):
    misc = tmp_path / "misc"
    misc.write_text(" 236 device-mapper\n")
    assert not checks.device_mapper_available(str(misc), str(tmp_path / "nope"))
    ctl = tmp_path / "control"
    ctl.write_text("")
    assert checks.device_mapper_available(str(misc), str(ctl))


def test_ids_are_stable_and_seed_dependent():
    a = load_config(EFI).assign_ids("seed-1")
    b = load_config(EFI).assign_ids("seed-1")
    d = load_config(EFI).assign_ids("seed-2")
    ids = lambda cfg: ([fs.uuid for fs in cfg.filesystems],
                       [p.partuuid for p in cfg.partitions], cfg.partition_table.disk_id)
    assert ids(a) == ids(b)
    assert ids(a) != ids(d)
    assert len(set(ids(a)[0] + ids(a)[1])) == 5
    assert a.nodes["mkfs_ESP"].fs_uuid.count("-") == 1     # FAT volume id XXXX-XXXX
    mbr = load_config(GRAPH).assign_ids("x")
    assert mbr.partition_table.disk_id.startswith("0x") and len(mbr.partition_table.disk_id) == 10


def test_given_uuid_is_kept():
    uuid = "12345678-1234-1234-1234-123456789abc"
    cfg = load_config(GRAPH.replace("type: ext4", f"type: ext4\n    uuid: {uuid}"))
    cfg.assign_ids("s")
    assert cfg.nodes["mkfs_root"].uuid == uuid


def test_registry_falls_back_to_builtins():
    assert {"local_loop", "partitioning", "mkfs", "mount", "fstab", "lvm"} <= \
        set(nodes.plugin_names())


def test_setup_cfg_entry_points_name_the_node_classes():
    """Installed, the plugins come from these entry points: each must import
    and be the node class of the plugin it is registered as."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    lines = [line.strip() for line in
             parser["options.entry_points"]["dib.block_device"].splitlines() if line.strip()]
    assert len(lines) == 6
    for line in lines:
        name, target = (part.strip() for part in line.split("="))
        module, attr = target.split(":")
        cls = getattr(importlib.import_module(module), attr)
        assert issubclass(cls, nodes.Node) and cls.plugin == name
        assert f"{cls.__module__}:{cls.__qualname__}" == target, "name where it is defined"
