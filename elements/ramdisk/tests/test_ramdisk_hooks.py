"""Unit tests for the ramdisk element's hook and init fragments
(dib.testing: no root, no network)."""
import gzip
import os
import shutil
import stat
from pathlib import Path

import fixtures

from dib.elements import shipped_hooks_dir
from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
LIBRARY = shipped_hooks_dir() / "lib"
VERSION = "6.1.0-test-amd64"
BUSYBOX_LIST = "sh\nls\ncat\nlsmod\nmodprobe\nwget\nreboot\nshutdown\nip\nudhcpc\n"


def newc_members(data: bytes) -> dict[str, tuple[int, bytes]]:
    """Name -> (mode, data) of a "newc" cpio archive."""
    out, pos = {}, 0
    while True:
        header = data[pos:pos + 110]
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data[pos:pos + size])
        pos = (pos + size + 3) & ~3


class TestBuildRamdisk(HookTestCase):
    """post-install.d/99-build-ramdisk, in a fake image with a fake kernel."""

    element = ELEMENT
    stub_commands = {"busybox": {"stdout": BUSYBOX_LIST}, "udevadm": None}

    def setUp(self):
        super().setUp()
        shutil.copytree(LIBRARY, self.root.join("/tmp/ramdisk-build"))
        # On PATH in a build (/tmp/in_target.d/bin); ramdisk-install.d needs it.
        os.makedirs(self.root.join("/usr/local/bin"), exist_ok=True)
        shutil.copy2(shipped_hooks_dir() / "dib-run-parts", self.root.join("/usr/local/bin"))
        self.root.write(f"/boot/vmlinuz-{VERSION}", "the kernel")
        modules = f"/kroot/lib/modules/{VERSION}"
        self.root.write(f"{modules}/modules.dep", "kernel/drivers/net/e1000.ko:\n")
        self.root.write(f"{modules}/kernel/drivers/net/e1000.ko", "e1000")
        self.root.write("/etc/dib_binary_deps", "busybox ip\n")
        self.stubs.add("ip")
        self.env = {"DIB_MODULE_ROOT": "/kroot", "DIB_LIB_UDEV_ROOT": "/nowhere"}

    def element_with(self, files: dict[str, str]) -> Path:
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "ramdisk"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        for rel, text in files.items():
            path = copy / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o755)
        return copy

    def test_ramdisk_and_kernel_built(self):
        element = self.element_with({
            "ramdisk-install.d/10-add-file":
                '#!/bin/bash\nset -eu\necho added > "$TMP_MOUNT_PATH/etc/added"\n'})
        self.run_hook(element, "post-install", "99-build-ramdisk", env=self.env)
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/tmp/kernel"), "the kernel")
        self.assertTrue(os.stat(self.root.join("/tmp/kernel")).st_mode & stat.S_IROTH)
        members = newc_members(gzip.decompress(Path(self.root.join("/tmp/ramdisk")).read_bytes()))
        for name in ("init", "init-func", "bin/busybox", "bin/bash", "bin/ip", "bin/udevadm",
                     f"lib/modules/{VERSION}/modules.dep", "lib/libc.so.6",
                     "etc/udev/udev.conf", "etc/added"):
            self.assertIn(name, members)
        self.assertTrue(stat.S_ISLNK(members["bin/sh"][0]))
        self.assertEqual(members["bin/sh"][1], b"busybox")
        self.assertEqual(members["sbin"][1], b"bin")
        init = members["init"][1].decode()
        self.assertTrue(init.startswith((LIBRARY / "scripts/init").read_text()))
        self.assertIn("# init fragment from 10-start-base-system", init)
        self.assertLess(init.index("10-start-base-system"), init.index("30-start-network"))
        self.assertTrue(init.endswith((LIBRARY / "scripts/init-end").read_text()))
        # Only the outputs stay in the image's /tmp; the work tree is gone.
        self.assertEqual(sorted(os.listdir(self.root.join("/tmp"))),
                         ["kernel", "ramdisk", "ramdisk-build"])

    def test_kernel_version_from_the_environment(self):
        self.root.write("/boot/vmlinuz-7.0.0-newer", "newer kernel")
        env = dict(self.env, DIB_KERNEL_VERSION=VERSION)
        self.run_hook("post-install", "99-build-ramdisk", env=env)
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/tmp/kernel"), "the kernel")

    def test_missing_busybox(self):
        result = self.run_hook("post-install", "99-build-ramdisk",
                               env=dict(self.env, BUSYBOX="/nonexistent/busybox"))
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("ERROR: ramdisk: post-install.d/99-build-ramdisk: busybox is "
                                  "not installed in the image (BUSYBOX=/nonexistent/busybox)")
        self.assertFileAbsent("/tmp/ramdisk")

    def test_missing_binary_dep(self):
        self.root.write("/etc/dib_binary_deps", "busybox ip not-installed-tool\n")
        result = self.run_hook("post-install", "99-build-ramdisk", env=self.env)
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("populate_lib: not-installed-tool is not found in PATH")

    def test_no_kernel(self):
        os.unlink(self.root.join(f"/boot/vmlinuz-{VERSION}"))
        result = self.run_hook("post-install", "99-build-ramdisk", env=self.env)
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("find_kernel_version: unable to find a suitable kernel")

    def test_without_ramdisk_base(self):
        shutil.rmtree(self.root.join("/tmp/ramdisk-build"))
        result = self.run_hook("post-install", "99-build-ramdisk", env=self.env)
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("/tmp/ramdisk-build/ramdisk-functions is missing")


class FragmentCase(HookTestCase):
    """Runs init.d fragments after init-func inside the fake root, with the
    kernel command line from /cmdline."""

    def run_fragment(self, name: str, cmdline: str = "", before: str = ""):
        self.root.write("/cmdline", cmdline + "\n")
        # awk is an alternatives link on Debian: the fake image needs its own.
        awk = os.path.realpath(shutil.which("awk"))
        os.makedirs(self.root.join("/etc/alternatives"), exist_ok=True)
        os.symlink(awk, self.root.join("/etc/alternatives/awk"))
        element = Path(self.useFixture(fixtures.TempDir()).path) / "fragments"
        hook = element / "post-install.d" / "10-run"
        hook.parent.mkdir(parents=True)
        (element / "README.rst").write_text("x\n")
        shutil.copytree(ELEMENT / "init.d", element / "init.d")
        hook.write_text("#!/bin/bash\n"
                        'source "$_LIB/scripts/d/init-func"\n'
                        'get_kernel_parameter() { find_parameter_from_file "$1" /cmdline; }\n'
                        f"{before}\n"
                        f"source /tmp/in_target.d/init.d/{name}\n"
                        'echo "BOOT_INTERFACE=$BOOT_INTERFACE"\n')
        hook.chmod(0o755)
        return self.run_hook(element, "post-install", "10-run")


class TestStartBaseSystem(FragmentCase):
    stub_commands = ("mount", "syslogd", "klogd", "udevadm", "udevd", "systemd-udevd")

    def test_file_systems_logging_and_udev(self):
        result = self.run_fragment("10-start-base-system")
        self.assertHookSucceeded(result)
        self.assertCalled("mount", "-t", "proc", "proc", "/proc", exact=True)
        self.assertCalled("mount", "-t", "sysfs", "sysfs", "/sys", exact=True)
        self.assertCalled("mount", "-t", "devtmpfs", "devtmpfs", "/dev", exact=True)
        self.assertCalled("mount", "-t", "devpts", "devpts", "/dev/pts", exact=True)
        self.assertCalled("syslogd")
        udevd = self.stubs.calls("udevd") + self.stubs.calls("systemd-udevd")
        self.assertEqual([c.args for c in udevd], [["--daemon", "--resolve-names=never"]])
        self.assertCalled("udevadm", "trigger", "--action=add", exact=True)
        self.assertCalled("udevadm", "settle", exact=True)
        self.assertCallOrder("mount", "syslogd", "udevadm")


IP_LINKS = ("1: lo: <LOOPBACK,UP> mtu 65536 state UNKNOWN link/loopback 00:00:00:00:00:00\n"
            "2: eth0: <BROADCAST> mtu 1500 state DOWN link/ether 52:54:00:12:34:56 brd ff\n")


class TestStartNetwork(FragmentCase):
    stub_commands = {"ip": {"script": '[ "$1" = -o ] && printf "%s" "$LINKS"; exit 0'},
                     "udhcpc": None, "sleep": None}

    VARS = ('BOOT_MAC_ADDRESS=52:54:00:12:34:56 BOOT_IP_ADDRESS= BOOT_NETMASK= '
            'BOOT_GATEWAY=; export LINKS="' + IP_LINKS + '"')

    def ip_calls(self):
        return [c.args for c in self.stubs.calls("ip") if c.args[0] != "-o"]

    def test_no_boot_interface_leaves_the_network_alone(self):
        result = self.run_fragment("30-start-network", before=self.VARS.replace(
            "BOOT_MAC_ADDRESS=52:54:00:12:34:56", "BOOT_MAC_ADDRESS="))
        self.assertHookSucceeded(result)
        self.assertIn("network not configured", result.output)
        self.assertEqual(self.ip_calls(), [["link", "set", "lo", "up"]])
        self.assertNotCalled("udhcpc")

    def test_bootif_and_dhcp(self):
        result = self.run_fragment("30-start-network", before=self.VARS)
        self.assertHookSucceeded(result)
        self.assertIn("BOOT_INTERFACE=eth0", result.output)
        self.assertIn(["link", "set", "eth0", "up"], self.ip_calls())
        self.assertCalled("udhcpc", "-i", "eth0")
        self.assertCalled("udhcpc", "-s", "/etc/udhcpc.script")
        self.assertFileMode("/etc/udhcpc.script", "0755")

    def test_static_address(self):
        before = (self.VARS.replace("BOOT_IP_ADDRESS= BOOT_NETMASK= BOOT_GATEWAY=",
                                    "BOOT_IP_ADDRESS=10.0.0.5 BOOT_NETMASK=255.255.255.0 "
                                    "BOOT_GATEWAY=10.0.0.254"))
        result = self.run_fragment("30-start-network", before=before)
        self.assertHookSucceeded(result)
        calls = self.ip_calls()
        self.assertIn(["addr", "add", "10.0.0.5/255.255.255.0", "dev", "eth0"], calls)
        self.assertIn(["route", "replace", "default", "via", "10.0.0.254"], calls)
        self.assertNotCalled("udhcpc")

    def test_ip_without_bootif_takes_the_first_interface(self):
        before = self.VARS.replace("BOOT_MAC_ADDRESS=52:54:00:12:34:56", "BOOT_MAC_ADDRESS=")
        result = self.run_fragment("30-start-network", cmdline="ip=dhcp", before=before)
        self.assertHookSucceeded(result)
        self.assertIn("BOOT_INTERFACE=eth0", result.output)
        self.assertCalled("udhcpc", "-i", "eth0")
