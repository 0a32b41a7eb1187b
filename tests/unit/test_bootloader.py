import struct

import pytest

from dib import bootloader
from dib.blockdev import layout
from dib.blockdev.graph import load_config
from dib.blockdev.layout import unsized_plan
from dib.bootloader import bios
from dib.errors import BlockDeviceError, PreflightError

from tests.unit.test_blockdev_config import EFI, GRAPH, edit, shipped_layout

MiB = 1024 ** 2


def _boot_img():
    img = bytearray(512)
    img[0:2] = b"\xeb\x63"                 # jmp over the BPB
    img[0x66:0x68] = b"\xeb\x05"           # the drive-check jump
    img[0x100:0x110] = b"GRUB-BOOT-CODE!!"
    img[510:512] = b"\x55\xaa"
    return bytes(img)


def _core_img(sectors=5):
    core = bytearray(512 * sectors)
    struct.pack_into("<Q", core, 0x1F4, 1)             # grub-mkimage's placeholder
    struct.pack_into("<H", core, 0x1FC, sectors - 1)  # length already filled in
    core[512:520] = b"COREBODY"
    return bytes(core)


def _mbr_with_table():
    mbr = bytearray(512)
    mbr[0x1B8:0x1BC] = b"\x78\x56\x34\x12"             # disk signature
    mbr[0x1BE:0x1CE] = b"\x80" + b"\x01" * 15          # one partition entry
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def test_boot_sector_patch_keeps_table_and_sets_fields():
    out = bios.patch_boot_sector(_mbr_with_table(), _boot_img(), 2048)
    assert out[0x100:0x110] == b"GRUB-BOOT-CODE!!"
    assert struct.unpack_from("<Q", out, 0x5C)[0] == 2048
    assert out[0x66:0x68] == b"\x90\x90"
    assert out[0x1B8:] == _mbr_with_table()[0x1B8:]


def test_boot_sector_refuses_disk_without_table():
    with pytest.raises(BlockDeviceError, match="no MBR"):
        bios.patch_boot_sector(bytes(512), _boot_img(), 1)
    with pytest.raises(BlockDeviceError, match="boot.img"):
        bios.patch_boot_sector(_mbr_with_table(), bytes(512), 1)


def test_core_patch_sets_blocklist_start():
    out = bios.patch_core_image(_core_img(), 4096)
    assert struct.unpack_from("<Q", out, 0x1F4)[0] == 4097
    assert struct.unpack_from("<H", out, 0x1FC)[0] == 4
    with pytest.raises(BlockDeviceError):
        bios.patch_core_image(bytes(1024), 1)


def test_embed_into_synthetic_image(tmp_path):
    raw = tmp_path / "d.raw"
    with open(raw, "wb") as fh:
        fh.truncate(4 * MiB)
        fh.write(_mbr_with_table())
    bios.embed(raw, _boot_img(), _core_img(), 1, MiB - 512)
    data = raw.read_bytes()
    assert struct.unpack_from("<Q", data, 0x5C)[0] == 1
    assert struct.unpack_from("<Q", data, 512 + 0x1F4)[0] == 2
    assert data[1024:1032] == b"COREBODY"
    with pytest.raises(BlockDeviceError, match="does not fit"):
        bios.embed(raw, _boot_img(), _core_img(10), 1, 2048)


def _tree(tmp_path):
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "etc").mkdir()
    (tree / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    for v in ("6.1.0-9-amd64", "6.1.0-10-amd64"):
        (tree / f"boot/vmlinuz-{v}").write_text("k")
        (tree / f"boot/initrd.img-{v}").write_text("i")
    return tree


def test_prepare_tree_writes_grub_cfg(tmp_path):
    tree = _tree(tmp_path)
    cfg = load_config(EFI).assign_ids("s")
    setup = bootloader.prepare_tree(tree, unsized_plan(cfg), "quiet",
                                    options=bootloader.BootOptions())
    text = setup.grub_cfg.read_text()
    root_uuid = cfg.nodes["mkfs_root"].uuid
    assert setup.kernel_version == "6.1.0-10-amd64"           # newest, not lexical
    assert f"search --no-floppy --fs-uuid --set=root {root_uuid}" in text
    assert (f"linux /boot/vmlinuz-6.1.0-10-amd64 root=UUID={root_uuid} ro "
            "console=tty0 console=ttyS0,115200 no_timer_check nofb nomodeset "
            "gfxpayload=text quiet") in text
    assert "initrd /boot/initrd.img-6.1.0-10-amd64" in text
    assert "set timeout=5" in text and "serial --unit=0 --speed=115200" in text


def test_boot_options_from_env():
    opts = bootloader.BootOptions.from_env({"DIB_GRUB_TIMEOUT": "0",
                                            "DIB_BOOTLOADER_SERIAL_CONSOLE": "ttyS1,9600",
                                            "DIB_BOOTLOADER_DEFAULT_CMDLINE": "",
                                            "DIB_NO_TIMER_CHECK": "False",
                                            "DIB_BOOTLOADER_VIRTUAL_TERMINAL": ""})
    assert opts.timeout == 0 and opts.serial_unit_speed() == (1, 9600)
    assert opts.kernel_cmdline() == "console=ttyS1,9600"
    with pytest.raises(BlockDeviceError):
        bootloader.BootOptions.from_env({"DIB_GRUB_TIMEOUT": "soon"})


def test_separate_boot_uses_its_own_paths(tmp_path):
    tree = _tree(tmp_path)
    cfg = load_config("""
- local_loop: {name: image0}
- partitioning:
    base: image0
    label: mbr
    partitions:
      - {name: boot, flags: [boot, primary], size: 256MiB,
         mkfs: {type: ext4, mount: {mount_point: /boot, fstab: {}}}}
      - {name: root, flags: [primary], size: 100%,
         mkfs: {type: ext4, mount: {mount_point: /, fstab: {}}}}
""").assign_ids("s")
    setup = bootloader.prepare_tree(tree, unsized_plan(cfg), None,
                                    options=bootloader.BootOptions())
    body = setup.grub_cfg.read_text()
    assert setup.boot_separate and "linux /vmlinuz-" in body
    assert cfg.nodes["mkfs_boot"].uuid in body
    early = bootloader.early_config(setup.boot_uuid, True, bootloader.BootOptions())
    assert "set prefix=($root)/grub" in early


def test_prepare_tree_needs_kernel_and_ids(tmp_path):
    cfg = load_config(EFI)
    with pytest.raises(BlockDeviceError, match="assign_ids"):
        bootloader.prepare_tree(_tree(tmp_path), unsized_plan(cfg))
    cfg.assign_ids("s")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BlockDeviceError, match="no kernel"):
        bootloader.prepare_tree(empty, unsized_plan(cfg))


def test_firmware_support_by_layout():
    plan = lambda text: layout.plan_disk(load_config(text).assign_ids("s"), tree_bytes=0,
                                         image_size=2 * 1024 ** 3)
    assert bootloader.firmware_support(plan(EFI)) == (True, True)
    assert bootloader.firmware_support(plan(GRAPH)) == (True, False)
    no_bsp = edit(EFI, "type: 'EF02'", "type: '8300'")
    assert bootloader.firmware_support(plan(no_bsp)) == (False, True)
    assert bootloader.firmware_support(plan(None)) == (False, False)
    with pytest.raises(PreflightError, match="neither"):
        bootloader.preflight(plan(None))


@pytest.mark.parametrize("element, firmware", [("block-device-mbr", (True, True)),
                                               ("block-device-gpt", (True, False)),
                                               ("block-device-efi", (True, True))])
def test_shipped_layouts_boot_with_the_firmware_they_promise(element, firmware):
    cfg = load_config(shipped_layout(element)).assign_ids("s")
    plan = layout.plan_disk(cfg, tree_bytes=600 * MiB)
    assert bootloader.firmware_support(plan) == firmware
    assert plan.root_fs.mount_point == "/" and plan.boot_fs is plan.root_fs


def test_preflight_names_missing_grub_package(tmp_path):
    plan = layout.plan_disk(load_config(EFI).assign_ids("s"), tree_bytes=0,
                            image_size=2 * 1024 ** 3)
    with pytest.raises(PreflightError, match="grub-pc-bin") as exc:
        bootloader.preflight(plan, grub_lib=tmp_path)
    assert "grub-efi-amd64-bin" in str(exc.value)
