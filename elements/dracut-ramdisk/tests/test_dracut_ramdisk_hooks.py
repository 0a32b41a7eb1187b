"""Unit tests for the dracut-ramdisk element's hooks (dib.testing: no root,
no network). The sandbox's /usr is the host's, read-only, so the dracut run
itself is the test-element's (test-elements/dracut-built)."""
import shutil
from pathlib import Path

import fixtures

from dib.elements import shipped_hooks_dir
from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


class TestEnsureDrivers(HookTestCase):
    """post-install.d/01-ensure-drivers."""

    element = ELEMENT
    stub_commands = ()

    def element_with(self, files):
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "dracut-ramdisk"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        for rel, text in files.items():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            (copy / rel).write_text(text)
        return copy

    def test_drivers_recorded(self):
        element = self.element_with({"dracut-drivers.d/storage": "ahci nvme  # disks\n"})
        self.run_hook(element, "post-install", "01-ensure-drivers")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/dib_dracut_drivers").split(),
                         ["virtio", "virtio_net", "virtio_blk", "ahci", "nvme"])

    def test_no_drivers(self):
        element = self.element_with({})
        shutil.rmtree(element / "dracut-drivers.d")
        self.run_hook(element, "post-install", "01-ensure-drivers")
        self.assertHookSucceeded()
        self.assertOutputContains("No extra drivers found")
        self.assertFileAbsent("/etc/dib_dracut_drivers")


class TestBuildDracutRamdisk(HookTestCase):
    """post-install.d/99-build-dracut-ramdisk: what it checks first."""

    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        shutil.copytree(shipped_hooks_dir() / "lib", self.root.join("/tmp/ramdisk-build"))
        shutil.copytree(ELEMENT / "extra-data.d" / "scripts" / "module",
                        self.root.join("/tmp/ramdisk-build/scripts/module"))

    def test_without_ramdisk_base(self):
        shutil.rmtree(self.root.join("/tmp/ramdisk-build"))
        result = self.run_hook("post-install", "99-build-dracut-ramdisk")
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("/tmp/ramdisk-build/ramdisk-functions is missing")
        self.assertNotCalled("dracut")

    def test_without_the_dracut_module(self):
        shutil.rmtree(self.root.join("/tmp/ramdisk-build/scripts/module"))
        result = self.run_hook("post-install", "99-build-dracut-ramdisk")
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("the dracut module is missing from "
                                  "/tmp/ramdisk-build/scripts/module")

    def test_without_dracut(self):
        if shutil.which("dracut"):
            self.skipTest("this host has dracut installed")
        result = self.run_hook("post-install", "99-build-dracut-ramdisk")
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("dracut-ramdisk: post-install.d/99-build-dracut-ramdisk: "
                                  "dracut is not installed in the image")


class TestRamdiskBaseCopiesTheModule(HookTestCase):
    """ramdisk-base's extra-data.d hook, in a hooks tree that has this
    element's extra-data.d merged in, puts the dracut module where
    99-build-dracut-ramdisk looks for it."""

    stub_commands = ()

    def test_module_in_ramdisk_build(self):
        merged = Path(self.useFixture(fixtures.TempDir()).path) / "merged"
        base = ELEMENT.parent / "ramdisk-base"
        shutil.copytree(base, merged, ignore=shutil.ignore_patterns("tests", "test-elements"))
        shutil.copytree(ELEMENT / "extra-data.d", merged / "extra-data.d", dirs_exist_ok=True)
        self.run_hook(merged, "extra-data", "01-inject-ramdisk-build-files")
        self.assertHookSucceeded()
        for name in ("module-setup.sh", "deploy-cmdline.sh"):
            self.assertEqual(self.root.read(f"/tmp/ramdisk-build/scripts/module/{name}"),
                             (ELEMENT / "extra-data.d/scripts/module" / name).read_text())
        self.assertFileExists("/tmp/ramdisk-build/scripts/init")
