"""Unit tests for the ramdisk-base element's hooks and init fragments
(dib.testing: no root, no network)."""
import hashlib
import re
import shutil
from pathlib import Path

import fixtures

from dib.elements import shipped_hooks_dir
from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
LIBRARY = shipped_hooks_dir() / "lib"


class ElementCopy(HookTestCase):
    element = ELEMENT

    def element_with(self, files: dict[str, str]) -> Path:
        """The element plus other elements' files, as a build merges them."""
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "ramdisk-base"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        for rel, text in files.items():
            path = copy / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return copy


class TestInjectRamdiskBuildFiles(ElementCopy):
    """extra-data.d/01-inject-ramdisk-build-files."""

    stub_commands = ()

    def test_library_and_scripts_copied(self):
        self.run_hook("extra-data", "01-inject-ramdisk-build-files")
        self.assertHookSucceeded()
        for name in ("die", "common-defaults", "common-functions", "img-defaults",
                     "img-functions", "ramdisk-defaults", "ramdisk-functions",
                     "scripts/init", "scripts/init-end", "scripts/d/init-func"):
            self.assertEqual(self.root.read(f"/tmp/ramdisk-build/{name}"),
                             (LIBRARY / name).read_text(), name)


class TestEnsureBinaries(ElementCopy):
    """post-install.d/01-ensure-binaries."""

    stub_commands = ("mytool", "othertool")

    def test_binaries_recorded(self):
        element = self.element_with({
            "binary-deps.d/ramdisk": "bash\nmytool  # the tool\n",
            "binary-deps.d/other": "othertool\n"})
        self.run_hook(element, "post-install", "01-ensure-binaries")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/dib_binary_deps").split(),
                         ["othertool", "bash", "mytool"])

    def test_missing_binary_names_it_and_its_list(self):
        element = self.element_with({"binary-deps.d/myelement": "bash\nno-such-tool\n"})
        result = self.run_hook(element, "post-install", "01-ensure-binaries")
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains(
            "ERROR: ramdisk-base: post-install.d/01-ensure-binaries: 'no-such-tool', listed "
            "in binary-deps.d/myelement, is not installed in the image")
        self.assertFileAbsent("/etc/dib_binary_deps")

    def test_no_lists(self):
        self.root.write("/etc/dib_binary_deps", "stale\n")
        self.run_hook("post-install", "01-ensure-binaries")
        self.assertHookSucceeded()
        self.assertOutputContains("No binary-deps found")
        self.assertFileAbsent("/etc/dib_binary_deps")


class TestExtractRamdiskFiles(ElementCopy):
    """cleanup.d/99-extract-ramdisk-files."""

    stub_commands = ()

    def setUp(self):
        super().setUp()
        self.root.write("/tmp/ramdisk", "cpio bytes")
        self.root.write("/tmp/kernel", "kernel bytes", mode=0o600)
        self.out = Path(self.root.join("/out"))
        self.out.mkdir()
        self.name = str(self.out / "deploy")

    def test_files_copied_next_to_the_output(self):
        self.run_hook("cleanup", "99-extract-ramdisk-files", env={"IMAGE_NAME": self.name})
        self.assertHookSucceeded()
        self.assertEqual((self.out / "deploy.initramfs").read_text(), "cpio bytes")
        self.assertEqual((self.out / "deploy.kernel").read_text(), "kernel bytes")
        self.assertEqual((self.out / "deploy.kernel").stat().st_mode & 0o444, 0o444)
        self.assertEqual(sorted(p.name for p in self.out.iterdir()),
                         ["deploy.initramfs", "deploy.kernel"])

    def test_checksums(self):
        self.run_hook("cleanup", "99-extract-ramdisk-files",
                      env={"IMAGE_NAME": self.name, "DIB_CHECKSUM": "md5,sha256"})
        self.assertHookSucceeded()
        for name, data in (("deploy.initramfs", b"cpio bytes"), ("deploy.kernel", b"kernel bytes")):
            self.assertEqual((self.out / f"{name}.sha256").read_text(),
                             f"{hashlib.sha256(data).hexdigest()}  {name}\n")
            self.assertEqual((self.out / f"{name}.md5").read_text(),
                             f"{hashlib.md5(data).hexdigest()}  {name}\n")

    def test_checksum_one_means_both(self):
        self.run_hook("cleanup", "99-extract-ramdisk-files",
                      env={"IMAGE_NAME": self.name, "DIB_CHECKSUM": "1"})
        self.assertHookSucceeded()
        self.assertEqual(len(list(self.out.glob("*.md5"))), 2)
        self.assertEqual(len(list(self.out.glob("*.sha256"))), 2)

    def test_bad_checksum_kind(self):
        result = self.run_hook("cleanup", "99-extract-ramdisk-files",
                               env={"IMAGE_NAME": self.name, "DIB_CHECKSUM": "crc32"})
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("DIB_CHECKSUM=crc32 names 'crc32'")

    def test_no_ramdisk_built(self):
        Path(self.root.join("/tmp/ramdisk")).unlink()
        result = self.run_hook("cleanup", "99-extract-ramdisk-files",
                               env={"IMAGE_NAME": self.name})
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("ramdisk-base: cleanup.d/99-extract-ramdisk-files: the image "
                                  "has no /tmp/ramdisk")
        self.assertOutputContains("add the ramdisk or dracut-ramdisk element")


class TestInitFragments(HookTestCase):
    """init.d/20-init-variables and 40-check-network-ready, run as /init runs
    them (after init-func), with the kernel command line from a file."""

    stub_commands = ("ping", "sleep")

    def run_fragments(self, cmdline: str, names=("20-init-variables",), show=()) -> dict:
        self.root.write("/cmdline", cmdline + "\n")
        element = Path(self.useFixture(fixtures.TempDir()).path) / "fragments"
        hook = element / "post-root.d" / "10-run"
        hook.parent.mkdir(parents=True)
        (element / "README.rst").write_text("x\n")
        body = ["#!/bin/bash", 'source "$_LIB/scripts/d/init-func"',
                # /proc/cmdline of the ramdisk, from a file
                f'get_kernel_parameter() {{ find_parameter_from_file "$1" {self.root.path}/cmdline; }}']
        body += [f"source {ELEMENT}/init.d/{name}" for name in names]
        body += [f'echo "{v}=${{{v}}}"' for v in show]
        hook.write_text("\n".join(body) + "\n")
        hook.chmod(0o755)
        result = self.run_hook(element, "post-root", "10-run")
        self.assertHookSucceeded(result)
        return dict(re.findall(r"^([A-Z_]+)=(.*)$", result.output, re.M))

    VARS = ("BOOT_MAC_ADDRESS", "BOOT_SERVER", "BOOT_IP_ADDRESS", "BOOT_NETMASK",
            "BOOT_GATEWAY", "DISK", "DEPLOYMENT_ID", "TROUBLESHOOT", "BOOT_METHOD")

    def test_pxe_and_static_ip(self):
        got = self.run_fragments(
            "console=ttyS0 BOOTIF=01-52-54-00-ab-cd-ef "
            "ip=10.0.0.5:10.0.0.1:10.0.0.254:255.255.255.0 disk=sda,vda deployment_id=42 "
            "troubleshoot=1", show=self.VARS)
        self.assertEqual(got, {"BOOT_MAC_ADDRESS": "52:54:00:AB:CD:EF", "BOOT_SERVER": "10.0.0.1",
                               "BOOT_IP_ADDRESS": "10.0.0.5", "BOOT_NETMASK": "255.255.255.0",
                               "BOOT_GATEWAY": "10.0.0.254", "DISK": "sda,vda",
                               "DEPLOYMENT_ID": "42", "TROUBLESHOOT": "1", "BOOT_METHOD": ""})

    def test_infiniband_bootif(self):
        got = self.run_fragments("BOOTIF=20-f4-52-14-3a-16-b1", show=("BOOT_MAC_ADDRESS",))
        self.assertEqual(got["BOOT_MAC_ADDRESS"], "F4:52:14:3A:16:B1")

    def test_dhcp_with_a_boot_server(self):
        got = self.run_fragments("ip=dhcp boot_server=192.0.2.7", show=self.VARS)
        self.assertEqual((got["BOOT_SERVER"], got["BOOT_IP_ADDRESS"], got["BOOT_MAC_ADDRESS"]),
                         ("192.0.2.7", "", ""))

    def test_network_check_pings_the_boot_server(self):
        self.run_fragments("boot_server=192.0.2.7",
                           names=("20-init-variables", "40-check-network-ready"))
        self.assertCalled("ping", "-c", "5", "-q", "192.0.2.7", exact=True)
        self.assertOutputContains("network ready")

    def test_network_check_without_a_server(self):
        self.run_fragments("console=ttyS0", names=("20-init-variables", "40-check-network-ready"))
        self.assertNotCalled("ping")
        self.assertOutputContains("network ready")
