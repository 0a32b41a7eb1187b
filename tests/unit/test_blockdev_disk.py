import json
import os
import shutil
import struct

import pytest

from dib import runner
from dib.blockdev import assemble, fstab, layout
from dib.blockdev.graph import load_config
from dib.errors import BlockDeviceError

from tests.unit.test_blockdev_config import EFI, GRAPH, edit

MiB = 1024 ** 2
GiB = 1024 ** 3
#: SOURCE_DATE_EPOCH of the reproducible disks below, given to build_disk, not
#: set in the environment: an element may set it for its build alone
EPOCH = 1700000000

VAR = """
- local_loop: {name: image0}
- partitioning:
    base: image0
    label: gpt
    partitions:
      - name: ESP
        type: 'EF00'
        size: 64MiB
        mkfs: {type: vfat, mount: {mount_point: /boot/efi, fstab: {}}}
      - {name: BSP, type: 'EF02', size: 1MiB}
      - name: root
        size: 60%
        mkfs: {mount: {mount_point: /, fstab: {fsck-passno: 1}}}
      - name: var
        size: 100%
        mkfs: {name: mkfs_var, type: ext4, label: var, mount: {mount_point: /var, fstab: {}}}
      - name: swap
        size: 0%
"""

LOGICAL = """
- local_loop: {name: image0}
- partitioning:
    base: image0
    label: mbr
    partitions:
      - {name: root, flags: [boot, primary], size: 1GiB,
         mkfs: {type: ext4, mount: {mount_point: /, fstab: {}}}}
      - {name: data, size: 50%, mkfs: {type: ext4, mount: {mount_point: /srv, fstab: {}}}}
      - {name: swap, size: 100%, type: 0x82,
         mkfs: {type: swap, mount: {mount_point: none, fstab: {}}}}
"""


def test_gpt_efi_plan_offsets_and_alignment():
    cfg = load_config(EFI).assign_ids("t")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=2 * GiB)
    parts = {p.name: p for p in plan.partitions}
    assert parts["ESP"].start == 1 * MiB and parts["ESP"].size == 550 * MiB
    assert parts["BSP"].start == 551 * MiB and parts["BSP"].size == 8 * MiB
    assert parts["root"].start == 559 * MiB
    assert parts["root"].end <= 2 * GiB - 33 * 512          # backup GPT untouched
    assert parts["root"].size == 2 * GiB - 560 * MiB        # 100% of the rest, MiB-aligned
    for p in plan.partitions:
        assert p.start % MiB == 0
    assert plan.root_fs.offset == parts["root"].start
    assert plan.esp_fs.name == "mkfs_ESP"
    assert plan.bios_embed_area() == (parts["BSP"].start // 512, 8 * MiB)


def test_where_root_boot_and_the_esp_are():
    """The same answer before the disk is sized (grub.cfg, hooks) and after."""
    by_type = load_config(EFI).assign_ids("t")
    by_mount = load_config(edit(EFI, "type: 'EF00'", "type: '8300'")).assign_ids("t")
    boot = load_config(LOGICAL.replace("mount_point: /srv", "mount_point: /boot"))
    for cfg in (by_type, by_mount, boot):
        placed = layout.plan_disk(cfg, tree_bytes=0, image_size=3 * GiB)
        for plan in (layout.unsized_plan(cfg), placed):
            assert plan.root_fs.name == "mkfs_root"
            if cfg is boot:
                assert plan.esp is None and plan.boot_fs.name == "mkfs_data"
                assert plan.hook_environment()["DIB_BOOT_LABEL"] == "mkfs_data"
            else:
                assert plan.esp.name == "ESP" and plan.esp_fs.name == "mkfs_ESP"
                assert plan.boot_fs is plan.root_fs
    assert layout.unsized_plan(by_type).size == 0


def test_percent_is_of_remaining_space():
    text = VAR.replace("      - name: swap\n        size: 0%\n", "")
    cfg = load_config(text).assign_ids("t")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=2 * GiB)
    root, var = plan.partition("root"), plan.partition("var")
    free_after_bsp = 2 * GiB - 33 * 512 - root.start
    assert root.size == (int(free_after_bsp * 0.6) // MiB) * MiB
    assert var.start == root.end
    assert plan.fs_at("/var").name == "mkfs_var"


def test_zero_percent_partition_is_refused():
    with pytest.raises(BlockDeviceError, match="'0%'"):
        load_config(VAR)


def test_too_small_disk_names_partition():
    cfg = load_config(EFI).assign_ids("t")
    with pytest.raises(BlockDeviceError, match="'BSP'|'root'") as exc:
        layout.plan_disk(cfg, tree_bytes=0, image_size=555 * MiB)
    assert "DIB_IMAGE_SIZE" in str(exc.value)


def test_default_size_follows_dib():
    cfg = load_config(None).assign_ids("t")
    plan = layout.plan_disk(cfg, tree_bytes=600 * MiB)
    assert plan.size >= 1000 * MiB and plan.size % (64 * 1024) == 0
    extra = layout.plan_disk(cfg, tree_bytes=600 * MiB, extra_size=100 * MiB)
    assert 700 * MiB <= extra.size < 1000 * MiB
    assert plan.label is None and plan.root_fs.offset == 0 and plan.root_fs.size == plan.size
    efi = layout.plan_disk(load_config(EFI).assign_ids("t"), tree_bytes=300 * MiB)
    assert efi.size > 300 * MiB / 0.6 + 558 * MiB


def test_sfdisk_script_gpt():
    cfg = load_config(EFI).assign_ids("t")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=2 * GiB)
    script = layout.sfdisk_script(plan)
    lines = script.splitlines()
    assert lines[0] == "label: gpt"
    assert lines[1] == f"label-id: {cfg.partition_table.disk_id}"
    assert "start=2048, size=1126400, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in script
    assert f"uuid={cfg.nodes['root'].partuuid.upper()}" in script
    assert 'name="BSP"' in script


def test_sfdisk_script_mbr_with_logicals():
    cfg = load_config(LOGICAL).assign_ids("t")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=3 * GiB)
    script = layout.sfdisk_script(plan)
    assert "label: dos" in script and "label-id: 0x" in script
    body = [line for line in script.splitlines() if line.startswith("start=")]
    assert body[0].endswith("type=83, bootable")
    assert body[1].endswith("type=5")
    assert body[3].endswith("type=82")
    data, swap = plan.partition("data"), plan.partition("swap")
    assert data.logical and data.number == 5 and swap.number == 6
    assert data.start == plan.extended[0] + MiB         # room for the EBR


def _sfdisk_json(raw):
    out = runner.run(["sfdisk", "--json", str(raw)]).stdout
    return json.loads(out)["partitiontable"]


def needs_tools(*tools: str):
    """Skip where the host lacks one of ``tools`` (sbin included)."""
    missing = [t for t in tools if not shutil.which(t, path="/usr/sbin:/sbin:/usr/bin")]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed")


needs_sfdisk = needs_tools("sfdisk")


@needs_sfdisk
def test_real_gpt_table_round_trips(tmp_path):
    cfg = load_config(EFI).assign_ids("t")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=2 * GiB)
    raw = tmp_path / "d.raw"
    raw.write_bytes(b"")
    with open(raw, "wb") as fh:
        fh.truncate(plan.size)
    runner.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(raw)],
               input=layout.sfdisk_script(plan))
    table = _sfdisk_json(raw)
    assert table["label"] == "gpt" and table["id"] == cfg.partition_table.disk_id
    got = [(p["start"] * 512, p["size"] * 512, p["uuid"].lower()) for p in table["partitions"]]
    assert got == [(p.start, p.size, p.partuuid) for p in plan.partitions]
    assert raw.stat().st_blocks * 512 < 1 * MiB             # still sparse


@needs_sfdisk
def test_real_mbr_table_round_trips(tmp_path):
    cfg = load_config(LOGICAL).assign_ids("t")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=3 * GiB)
    raw = tmp_path / "d.raw"
    with open(raw, "wb") as fh:
        fh.truncate(plan.size)
    runner.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(raw)],
               input=layout.sfdisk_script(plan))
    table = _sfdisk_json(raw)
    assert table["label"] == "dos" and table["id"] == cfg.partition_table.disk_id
    parts = table["partitions"]
    assert parts[0]["bootable"] is True and parts[0]["type"] == "83"
    assert [p["type"] for p in parts] == ["83", "5", "83", "82"]
    assert parts[3]["start"] * 512 == plan.partition("swap").start


def test_fstab_text_like_dib():
    cfg = load_config(EFI).assign_ids("t")
    assert fstab.fstab_text(cfg) == ("LABEL=cloudimg-rootfs / ext4 defaults 0 1\n"
                                    "LABEL=MKFS_ESP /boot/efi vfat defaults 0 2\n")
    by_uuid = fstab.fstab_text(cfg, by="uuid")
    assert f"UUID={cfg.nodes['mkfs_root'].uuid} / ext4" in by_uuid
    assert f"UUID={cfg.nodes['mkfs_ESP'].fs_uuid} /boot/efi vfat" in by_uuid


def test_fstab_swap_and_mount_without_fstab():
    cfg = load_config(LOGICAL)
    text = fstab.fstab_text(cfg)
    assert text.splitlines() == ["LABEL=cloudimg-rootfs / ext4 defaults 0 2",
                                 "LABEL=mkfs_data /srv ext4 defaults 0 2",
                                 "LABEL=mkfs_swap none swap sw 0 0"]
    graph = load_config(GRAPH.replace("- fstab:\n    name: fstab_root\n    base: mount_root\n",
                                      ""))
    assert fstab.fstab_text(graph) == ""


def test_required_tools():
    names = dict(assemble.required_tools(load_config(VAR.replace(
        "      - name: swap\n        size: 0%\n", ""))))
    assert names["sfdisk"] == "fdisk" and names["mkfs.ext4"] == "e2fsprogs"
    assert names["mkfs.fat"] == "dosfstools" and names["mcopy"] == "mtools"
    assert names["unshare"] == "util-linux"          # nested /var and /boot/efi
    assert "unshare" not in dict(assemble.required_tools(load_config(None)))


@needs_tools("mkfs.ext4")
def test_build_small_disk_without_nested_mounts(tmp_path):
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hello").write_text("hi\n")
    cfg = load_config(GRAPH).assign_ids("small")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=64 * MiB)
    result = assemble.build_disk(plan, tree, tmp_path / "d.raw")
    table = _sfdisk_json(result.raw)
    assert table["partitions"][0]["start"] == 2048
    out = runner.run(["debugfs", "-R", "cat /etc/hello",
                      f"{result.raw}?offset={plan.root_fs.offset}"])
    assert out.stdout == "hi\n"
    blkid = runner.run(["blkid", "-p", "-O", str(plan.root_fs.offset), "-o", "export",
                        str(result.raw)]).stdout
    assert f"UUID={plan.root_fs.uuid}" in blkid and "LABEL=cloudimg-rootfs" in blkid


@needs_tools("mkfs.ext4")
def test_disk_with_source_date_epoch_keeps_no_atime_or_ctime(tmp_path):
    """Two disks of one tree, read at different moments, are the same bytes:
    the atime (and ctime) mkfs copies from the tree is set to the epoch."""
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    hello = tree / "etc" / "hello"
    hello.write_text("hi\n")
    cfg = load_config(GRAPH).assign_ids("small")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=64 * MiB)
    disks = []
    for n, atime in enumerate((1600000000, 1650000000)):
        for path in (tree, tree / "etc", hello):
            os.utime(path, (atime, 1690000000))
        disks.append(assemble.build_disk(plan, tree, tmp_path / f"d{n}.raw", epoch=EPOCH).raw)
    assert disks[0].read_bytes() == disks[1].read_bytes()
    stat = runner.run(["debugfs", "-R", "stat /etc/hello",
                       f"{disks[0]}?offset={plan.root_fs.offset}"]).stdout
    assert "atime: 0x6553f100" in stat and "ctime: 0x6553f100" in stat
    assert "mtime: 0x64bb5a80" in stat      # the tree's own mtime, already below the epoch


@needs_tools("mkfs.ext4")
def test_disk_with_source_date_epoch_clamps_later_mtimes(tmp_path):
    """The tree keeps the times the build gave it; the ext4 filesystem holds
    none later than the epoch, whatever the file is called, and earlier ones
    as they are: two disks of trees written at different moments are one."""
    tree = tmp_path / "tree"
    (tree / "etc" / "a dir").mkdir(parents=True)
    late = tree / "etc" / "a dir" / 'say "hi";\\x'
    early = tree / "etc" / "early"
    late.write_text("late\n")
    early.write_text("early\n")
    cfg = load_config(GRAPH).assign_ids("small")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=64 * MiB)
    disks = []
    for n, mtime in enumerate((1710000000, 1720000000)):
        for path in (tree, tree / "etc", tree / "etc" / "a dir", late):
            os.utime(path, (mtime, mtime))
        os.utime(early, (mtime, 1690000000))
        disks.append(assemble.build_disk(plan, tree, tmp_path / f"d{n}.raw", epoch=EPOCH).raw)
    assert disks[0].read_bytes() == disks[1].read_bytes()
    assert os.lstat(late).st_mtime == 1720000000       # the tree is left as it was
    device = f"{disks[0]}?offset={plan.root_fs.offset}"
    for path in ("/", "/etc/a dir", '/etc/a dir/say ""hi"";\\x'):
        stat = runner.run(["debugfs", "-R", f'stat "{path}"', device]).stdout
        assert "mtime: 0x6553f100" in stat, path
    stat = runner.run(["debugfs", "-R", "stat /etc/early", device]).stdout
    assert "mtime: 0x64bb5a80" in stat


def test_disk_with_source_date_epoch_refuses_a_name_debugfs_cannot_hold(tmp_path):
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "two\nlines").write_text("x")
    cfg = load_config(GRAPH).assign_ids("small")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=64 * MiB)
    with pytest.raises(BlockDeviceError, match="line break") as caught:
        assemble.build_disk(plan, tree, tmp_path / "d.raw", epoch=EPOCH)
    assert "etc/two\nlines" in str(caught.value)


def test_used_inodes_from_dumpe2fs_groups():
    text = ("Group descriptor size:    64\nInodes per group:         8\n"
            "First inode:              11\n"
            "Group 0: (Blocks 0-8191)\n  Free inodes: \n"
            "Group 1: (Blocks 8192-16383)\n  Free inodes: 14-16\n"
            "Group 2: (Blocks 16384-24575)\n  Free inodes: 17, 19-24\n"
            "Group 3: (Blocks 24576-32767)\n  Free inodes: \n")
    # 1-10 are reserved (of them the root, 2, is copied from the tree);
    # groups hold 1-8, 9-16, 17-24 and 25-32.
    assert assemble.used_inodes(text) == [2, 11, 12, 13, 18, *range(25, 33)]


@needs_tools("mkfs.ext4", "mkfs.fat", "mlabel", "sfdisk")
def test_esp_with_source_date_epoch_has_its_id_and_no_build_time(tmp_path):
    tree = tmp_path / "tree"
    (tree / "boot" / "efi" / "EFI").mkdir(parents=True)
    cfg = load_config(EFI).assign_ids("esp")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=1 * GiB)
    raw = assemble.build_disk(plan, tree, tmp_path / "d.raw", epoch=EPOCH).raw
    esp = plan.esp_fs
    serial = runner.run(["minfo", "-i", f"{raw}@@{esp.offset}", "::"],
                        env=assemble.mtools_env()).stdout
    assert f"serial number: {esp.uuid.replace('-', '').upper()}" in serial
    with open(raw, "rb") as fh:
        fh.seek(esp.offset)
        data = fh.read(32 * MiB)
    entry = data.find(esp.label.encode().ljust(11) + b"\x08")
    assert entry > 512                  # the root directory's label entry
    # 2023-11-14 22:13:20 UTC in FAT's packed date and time, not today's
    mtime, mdate = struct.unpack_from("<HH", data, entry + 22)
    assert (mdate >> 9) + 1980 == 2023 and (mdate >> 5) & 15 == 11 and mdate & 31 == 14
    assert mtime >> 11 == 22 and (mtime >> 5) & 63 == 13


@needs_tools("mkfs.ext4", "mkfs.fat", "mcopy", "mdir", "sfdisk")
def test_esp_files_with_source_date_epoch_take_its_time(tmp_path):
    tree = tmp_path / "tree"
    (tree / "boot" / "efi" / "EFI" / "debian").mkdir(parents=True)
    grub = tree / "boot" / "efi" / "EFI" / "debian" / "grubx64.efi"
    grub.write_bytes(b"efi")
    os.utime(grub, (1720000000, 1720000000))
    cfg = load_config(EFI).assign_ids("esp")
    plan = layout.plan_disk(cfg, tree_bytes=0, image_size=1 * GiB)
    raw = assemble.build_disk(plan, tree, tmp_path / "d.raw", epoch=EPOCH).raw
    listing = runner.run(["mdir", "-i", f"{raw}@@{plan.esp_fs.offset}", "::/EFI/debian"],
                         env=assemble.mtools_env()).stdout
    line = next(text for text in listing.splitlines() if text.startswith("grubx64"))
    assert "2023-11-14" in line           # the epoch's day, not the file's (2024)
