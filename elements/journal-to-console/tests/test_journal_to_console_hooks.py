"""Unit tests for the journal-to-console element (dib.testing: no root, no network)."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
DROPIN = "/etc/systemd/journald.conf.d/log-to-console.conf"


class TestJournalToConsole(HookTestCase):
    """post-install.d/30-journal-to-console."""

    element = ELEMENT
    stub_commands = ()

    def test_dropin_forwards_to_console(self):
        self.run_hook("post-install", "30-journal-to-console")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(DROPIN), "[Journal]\nForwardToConsole=yes\n")
        self.assertFileMode(DROPIN, "0644")

    def test_existing_dropins_are_kept(self):
        self.root.write("/etc/systemd/journald.conf.d/size.conf", "[Journal]\nSystemMaxUse=50M\n")
        self.run_hook("post-install", "30-journal-to-console")
        self.assertHookSucceeded()
        self.assertFileContains("/etc/systemd/journald.conf.d/size.conf", "SystemMaxUse=50M")
        self.assertFileExists(DROPIN)

    def test_no_systemd_no_dropin(self):
        self.run_hook("post-install", "30-journal-to-console",
                      env={"DIB_INIT_SYSTEM": "openrc", "DISTRO_NAME": "gentoo"})
        self.assertHookSucceeded()
        self.assertFileAbsent(DROPIN)
