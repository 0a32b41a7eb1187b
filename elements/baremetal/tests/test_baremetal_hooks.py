"""Unit tests for the baremetal element's hook (dib.testing: no root, no network)."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
HOOK = "99-extract-kernel-and-ramdisk"


class TestExtractKernelAndRamdisk(HookTestCase):
    """cleanup.d/99-extract-kernel-and-ramdisk."""

    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        self.root.write("/etc/debian_version", "12.8\n")
        self.out = Path(self.root.join("/out"))
        self.out.mkdir()
        self.env = {"IMAGE_NAME": str(self.out / "overcloud")}

    def test_newest_kernel_and_its_initrd(self):
        for version in ("6.1.0-9-amd64", "6.1.0-10-amd64"):
            self.root.write(f"/boot/vmlinuz-{version}", f"kernel {version}", mode=0o600)
            self.root.write(f"/boot/initrd.img-{version}", f"initrd {version}", mode=0o600)
        self.run_hook("cleanup", HOOK, env=self.env)
        self.assertHookSucceeded()
        self.assertEqual((self.out / "overcloud.vmlinuz").read_text(), "kernel 6.1.0-10-amd64")
        self.assertEqual((self.out / "overcloud.initrd").read_text(), "initrd 6.1.0-10-amd64")
        self.assertEqual((self.out / "overcloud.vmlinuz").stat().st_mode & 0o444, 0o444)

    def test_patterns(self):
        self.root.write("/boot/vmlinuz-6.1.0-10-amd64", "stock")
        self.root.write("/boot/initrd.img-6.1.0-10-amd64", "stock")
        self.root.write("/boot/custom-kernel", "custom kernel")
        self.root.write("/boot/custom-initrd", "custom initrd")
        env = dict(self.env, DIB_BAREMETAL_KERNEL_PATTERN="custom-k*",
                   DIB_BAREMETAL_INITRD_PATTERN="custom-i*")
        self.run_hook("cleanup", HOOK, env=env)
        self.assertHookSucceeded()
        self.assertEqual((self.out / "overcloud.vmlinuz").read_text(), "custom kernel")
        self.assertEqual((self.out / "overcloud.initrd").read_text(), "custom initrd")

    def test_signed_kernel_marker_removed(self):
        self.root.write("/boot/vmlinuz-6.1.0-10-amd64", "k")
        self.root.write("/boot/initrd.img-6.1.0-10-amd64", "i")
        self.root.write("/dib-signed-kernel-version", "")
        self.run_hook("cleanup", HOOK, env=self.env)
        self.assertHookSucceeded()
        self.assertFileAbsent("/dib-signed-kernel-version")

    def test_tree_without_a_kernel(self):
        self.root.mkdir("/boot")
        result = self.run_hook("cleanup", HOOK, env=self.env)
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("no kernel found in")
        self.assertOutputContains("ERROR: baremetal: cleanup.d/99-extract-kernel-and-ramdisk: "
                                  "cannot extract the kernel and ramdisk")
        self.assertEqual(list(self.out.iterdir()), [])
