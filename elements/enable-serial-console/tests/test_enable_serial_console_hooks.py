"""Unit tests for the enable-serial-console element (dib.testing: no root, no network)."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
RULE = "/etc/udev/rules.d/99-serial-console.rules"


class TestSerialConsole(HookTestCase):
    """install.d/20-stty."""

    element = ELEMENT
    stub_commands = ()

    def test_systemd_udev_rule_starts_serial_getty(self):
        self.run_hook("install", "20-stty")
        self.assertHookSucceeded()
        rule = [line for line in self.root.read(RULE).splitlines()
                if line and not line.startswith("#")]
        self.assertEqual(len(rule), 1)
        for part in ('SUBSYSTEM=="tty"', 'ACTION=="add"', 'ATTRS{type}=="4"',
                     'ENV{SYSTEMD_WANTS}+="serial-getty@$name.service"'):
            self.assertIn(part, rule[0])
        self.assertFileMode(RULE, "0644")
        self.assertFileAbsent("/etc/init/ttySx.conf")

    def test_upstart_job(self):
        self.run_hook("install", "20-stty", env={"DIB_INIT_SYSTEM": "upstart"})
        self.assertHookSucceeded()
        self.assertFileContains("/etc/init/ttySx.conf", "exec /sbin/agetty -m \"$port\" 115200")
        self.assertFileContains("/etc/init/ttySx.conf", "> /dev/ttyS1")
        self.assertFileAbsent(RULE)

    def test_openrc_inittab_default_port(self):
        self.root.write("/etc/inittab", "id:3:initdefault:\n#s1:12345:respawn:/sbin/agetty -L 9600 ttyS1 vt100\n")
        self.run_hook("install", "20-stty", env={"DIB_INIT_SYSTEM": "openrc"})
        self.assertHookSucceeded()
        text = self.root.read("/etc/inittab")
        self.assertIn("\ns1:12345:respawn:/sbin/agetty -L 9600 ttyS1 vt100\n", text)
        self.assertIn("\ns0:12345:respawn:/sbin/agetty -L 115200 ttyS0 vt100\n", text)

    def test_openrc_arm64_port(self):
        self.run_hook("install", "20-stty", env={"DIB_INIT_SYSTEM": "openrc", "ARCH": "arm64"})
        self.assertHookSucceeded()
        self.assertFileContains("/etc/inittab", "agetty -L 115200 ttyAMA0 vt100")

    def test_openrc_port_from_environment(self):
        self.run_hook("install", "20-stty", env={"DIB_INIT_SYSTEM": "openrc",
                                                 "DIB_BOOTLOADER_SERIAL_CONSOLE": "ttyS1"})
        self.assertHookSucceeded()
        self.assertFileContains("/etc/inittab", "agetty -L 115200 ttyS1 vt100")

    def test_openrc_port_and_speed_from_environment(self):
        self.run_hook("install", "20-stty", env={"DIB_INIT_SYSTEM": "openrc",
                                                 "DIB_BOOTLOADER_SERIAL_CONSOLE": "ttyS1,57600"})
        self.assertHookSucceeded()
        self.assertFileContains("/etc/inittab", "agetty -L 57600 ttyS1 vt100")

    def test_openrc_bad_port_is_an_error(self):
        self.run_hook("install", "20-stty", env={"DIB_INIT_SYSTEM": "openrc",
                                                 "DIB_BOOTLOADER_SERIAL_CONSOLE": "/dev/ttyS0"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("enable-serial-console (install.d/20-stty): "
                                  "DIB_BOOTLOADER_SERIAL_CONSOLE='/dev/ttyS0'")
        self.assertFileAbsent("/etc/inittab")

    def test_unknown_init_system(self):
        self.run_hook("install", "20-stty", env={"DIB_INIT_SYSTEM": "runit"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_INIT_SYSTEM 'runit' is not supported")
