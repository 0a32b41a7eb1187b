"""Unit tests for the stable-interface-names element (dib.testing: no root, no network)."""
import subprocess
import sys
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
REPO = ELEMENT.parents[1]
LINKS = ("/etc/udev/rules.d/80-net-name-slot.rules",
         "/etc/udev/rules.d/80-net-setup-link.rules",
         "/etc/systemd/network/99-default.link")


class TestRemoveDisablingLinks(HookTestCase):
    """install.d/02-stable-interface-names."""

    element = ELEMENT
    stub_commands = ()

    def link_to_null(self, path):
        target = self.root.join(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to("/dev/null")

    def test_links_to_dev_null_are_removed(self):
        for path in LINKS:
            self.link_to_null(path)
        self.run_hook("install", "02-stable-interface-names")
        self.assertHookSucceeded()
        for path in LINKS:
            self.assertFalse(self.root.join(path).is_symlink(), path)
        self.assertOutputContains("removing /etc/systemd/network/99-default.link")

    def test_real_configuration_is_kept(self):
        self.root.write("/etc/systemd/network/99-default.link",
                        "[Link]\nNamePolicy=mac\n")
        self.run_hook("install", "02-stable-interface-names")
        self.assertHookSucceeded()
        self.assertFileContains("/etc/systemd/network/99-default.link", "NamePolicy=mac")

    def test_nothing_to_do(self):
        self.run_hook("install", "02-stable-interface-names")
        self.assertHookSucceeded()
        self.assertFileAbsent("/etc/udev/rules.d")


def mapped(distro, release):
    """What hooks/pkg-map makes of 'biosdevname' with this element's map."""
    out = subprocess.run(
        [sys.executable, str(REPO / "hooks" / "pkg-map"), "--missing-ok",
         "--pkg-map", str(ELEMENT / "pkg-map"), "--distro", distro, "--release", release,
         "biosdevname"],
        capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_biosdevname_only_where_the_distribution_has_it():
    assert mapped("debian", "bookworm") == []
    assert mapped("debian", "trixie") == []
    assert mapped("debian", "bullseye") == ["biosdevname"]
    assert mapped("ubuntu", "noble") == ["biosdevname"]
