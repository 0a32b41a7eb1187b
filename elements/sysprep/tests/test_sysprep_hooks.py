"""Unit tests for the sysprep element's hook (dib.testing: no root, no network)."""
import os
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


class TestClearMachineId(HookTestCase):
    """finalise.d/99-clear-machine-id."""

    element = ELEMENT
    stub_commands = ()

    def test_machine_ids_reset(self):
        self.root.write("/etc/machine-id", "0123456789abcdef0123456789abcdef\n")
        self.root.write("/var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n")
        self.run_hook("finalise", "99-clear-machine-id")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/machine-id"), "uninitialized\n")
        self.assertEqual(self.root.read("/var/lib/dbus/machine-id"), "")

    def test_dbus_link_left_alone(self):
        self.root.write("/etc/machine-id", "0123456789abcdef0123456789abcdef\n")
        self.root.mkdir("/var/lib/dbus")
        os.symlink("/etc/machine-id", self.root.join("/var/lib/dbus/machine-id"))
        self.run_hook("finalise", "99-clear-machine-id")
        self.assertHookSucceeded()
        self.assertTrue(self.root.join("/var/lib/dbus/machine-id").is_symlink())
        self.assertEqual(self.root.read("/etc/machine-id"), "uninitialized\n")

    def test_nothing_created_when_absent(self):
        self.run_hook("finalise", "99-clear-machine-id")
        self.assertHookSucceeded()
        self.assertFileAbsent("/etc/machine-id")
        self.assertFileAbsent("/var/lib/dbus/machine-id")
