"""Unit tests for the growroot element (dib.testing: no root, no network)."""
import shutil
from pathlib import Path

import fixtures
import yaml

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
SCRIPT = "/usr/local/sbin/growroot"
CHECK = "05-growroot-check-layout"


def layout(*partitions, extra=()):
    parts = []
    for name, mount in partitions:
        part = {"name": name, "size": "1GiB"}
        if mount:
            part["mkfs"] = {"type": "ext4", "mount": {"mount_point": mount}}
        parts.append(part)
    return [{"local_loop": {"name": "image0"}},
            {"partitioning": {"base": "image0", "label": "gpt", "partitions": parts}},
            *extra]


class TestEnable(HookTestCase):
    """post-install.d/80-growroot."""

    element = ELEMENT
    stub_commands = ("systemctl",)

    def test_systemd(self):
        self.run_hook("post-install", "80-growroot")
        self.assertHookSucceeded()
        self.assertCalled("systemctl", "enable", "growroot.service", exact=True)

    def test_openrc_needs_nothing_here(self):
        self.run_hook("post-install", "80-growroot", env={"DIB_INIT_SYSTEM": "openrc"})
        self.assertHookSucceeded()
        self.assertNotCalled("systemctl")

    def test_unknown_init_system(self):
        self.run_hook("post-install", "80-growroot", env={"DIB_INIT_SYSTEM": "runit"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("growroot (post-install.d/80-growroot): DIB_INIT_SYSTEM "
                                  "'runit' is not supported")


class TestLayoutCheck(HookTestCase):
    """preflight.d/05-growroot-check-layout."""

    element = ELEMENT
    stub_commands = ()

    def check(self, config=None, types="qcow2", **env):
        full = {"IMAGE_TYPES": types, "IMAGE_ELEMENT": "", "IMAGE_ELEMENT_YAML": "{}", **env}
        if config is not None:
            full["DIB_BLOCK_DEVICE_CONFIG"] = yaml.safe_dump(config)
        return self.run_hook("preflight", CHECK, env=full)

    def test_root_last_is_fine(self):
        self.check(layout(("ESP", "/boot/efi"), ("root", "/")))
        self.assertHookSucceeded()

    def test_partition_after_root_is_an_error(self):
        self.check(layout(("root", "/"), ("data", "/srv")))
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("growroot (preflight.d/05-growroot-check-layout): the "
                                  "block-device layout from DIB_BLOCK_DEVICE_CONFIG does not "
                                  "suit growroot: the / filesystem is on partition 'root', but "
                                  "partition 'data' comes after it")
        self.assertOutputContains("Put the root partition last")

    def test_root_on_lvm_is_an_error(self):
        config = layout(("ESP", "/boot/efi"), ("pv", None), extra=(
            {"lvm": {"name": "lvm", "base": ["pv"], "pvs": [{"name": "pv1", "base": "pv"}],
                     "vgs": [{"name": "vg", "base": ["pv1"]}],
                     "lvs": [{"name": "lv_root", "base": "vg", "size": "1G"}]}},
            {"mkfs": {"name": "fs_root", "base": "lv_root", "type": "xfs",
                      "mount": {"mount_point": "/"}}}))
        self.check(config)
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("the / filesystem is on 'lv_root', not on a partition")

    def test_separate_mount_node(self):
        config = layout(("root", None), ("swap", None), extra=(
            {"mkfs": {"name": "fs_root", "base": "root", "type": "ext4"}},
            {"mount": {"name": "mount_root", "base": "fs_root", "mount_point": "/"}}))
        self.check(config)
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("partition 'swap' comes after it")

    def test_trees_without_a_disk_are_not_checked(self):
        self.check(layout(("root", "/"), ("data", "/srv")), types="tar")
        self.assertHookSucceeded()

    def test_layout_of_an_element(self):
        elements = Path(self.useFixture(fixtures.TempDir(rootdir=str(self.root.join("/srv")))).path)
        for name, config in (("first", layout(("root", "/"), ("tail", None))),
                             ("second", layout(("root", "/")))):
            (elements / name).mkdir()
            (elements / name / "block-device-default.yaml").write_text(yaml.safe_dump(config))
        paths = yaml.safe_dump({n: str(elements / n) for n in ("first", "second")})
        self.check(IMAGE_ELEMENT="first second", IMAGE_ELEMENT_YAML=paths)
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("layout from element 'first' (block-device-default.yaml)")
        # An ARCH file wins over the default files of every element.
        (elements / "second" / "block-device-amd64.yaml").write_text(
            yaml.safe_dump(layout(("root", "/"))))
        self.check(IMAGE_ELEMENT="first second", IMAGE_ELEMENT_YAML=paths, ARCH="amd64")
        self.assertHookSucceeded()

    def test_builtin_layout_is_fine(self):
        self.check()
        self.assertHookSucceeded()

    def test_shipped_layouts_are_growable(self):
        elements = ELEMENT.parent
        for name in ("block-device-mbr", "block-device-gpt", "block-device-efi"):
            path = elements / name / "block-device-default.yaml"
            self.check(IMAGE_ELEMENT=name,
                       IMAGE_ELEMENT_YAML=yaml.safe_dump({name: str(path.parent)}))
            self.assertHookSucceeded()


class TestGrowrootScript(HookTestCase):
    """static/usr/local/sbin/growroot, run in the fake root with a fake sysfs."""

    element = ELEMENT
    stub_commands = {"findmnt": None, "growpart": None, "resize2fs": None,
                     "xfs_growfs": None}

    def boot(self, source="/dev/vda2", fstype="ext4", partition="2"):
        self.stubs.add("findmnt", script=f'case "$*" in *SOURCE*) echo "{source}";; '
                                        f'*) echo "{fstype}";; esac')
        block = self.root.join("/srv/sys/devices/virtio1/block/vda")
        (block / "vda2").mkdir(parents=True)
        if partition:
            (block / "vda2" / "partition").write_text(partition + "\n")
        links = self.root.join("/srv/sys/class/block")
        links.mkdir(parents=True)
        # Relative, as in sysfs: the sandbox shows the fake root at /.
        (links / "vda").symlink_to("../../devices/virtio1/block/vda")
        (links / "vda2").symlink_to("../../devices/virtio1/block/vda/vda2")
        target = self.root.join(SCRIPT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ELEMENT / "static" / SCRIPT.lstrip("/"), target)
        probe = Path(self.useFixture(fixtures.TempDir()).path) / "probe"
        hook = probe / "install.d" / "10-run"
        hook.parent.mkdir(parents=True)
        hook.write_text(f"#!/bin/bash\nGROWROOT_SYSFS=/srv/sys exec {SCRIPT}\n")
        hook.chmod(0o755)
        return self.run_hook(probe, "install", "10-run")

    def test_grows_partition_then_ext4(self):
        self.boot()
        self.assertHookSucceeded()
        self.assertCalled("growpart", "/dev/vda", "2", exact=True)
        self.assertCalled("resize2fs", "/dev/vda2", exact=True)
        self.assertCallOrder("growpart", "resize2fs")

    def test_already_full_still_grows_the_filesystem(self):
        self.stubs.add("growpart", exit_code=1, stdout="NOCHANGE: partition 2 is size 100\n")
        self.boot()
        self.assertHookSucceeded()
        self.assertCalled("resize2fs", "/dev/vda2")

    def test_growpart_error_fails(self):
        self.stubs.add("growpart", exit_code=2, stderr="FAILED: sfdisk failed\n")
        self.boot()
        self.assertHookFailed(exit_code=2)
        self.assertOutputContains("growroot: growpart /dev/vda 2 failed (exit status 2)")
        self.assertNotCalled("resize2fs")

    def test_xfs(self):
        self.boot(fstype="xfs")
        self.assertHookSucceeded()
        self.assertCalled("xfs_growfs", "/", exact=True)
        self.assertNotCalled("resize2fs")

    def test_not_a_partition(self):
        self.boot(partition="")
        self.assertHookSucceeded()
        self.assertOutputContains("/dev/vda2 is not a disk partition")
        self.assertNotCalled("growpart")

    def test_root_not_on_a_device(self):
        self.boot(source="overlay")
        self.assertHookSucceeded()
        self.assertOutputContains("/ is on 'overlay'")
        self.assertNotCalled("growpart")
