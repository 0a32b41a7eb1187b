"""Unit tests for the dib-python element's hooks (dib.testing: no root, no network)."""
import os
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


class TestDibPythonLink(HookTestCase):
    """pre-install.d/01-dib-python."""

    element = ELEMENT
    stub_commands = ("install-packages",)

    def test_link_to_python3(self):
        self.run_hook("pre-install", "01-dib-python")
        self.assertHookSucceeded()
        self.assertNotCalled("install-packages")
        link = self.root.join("/usr/local/bin/dib-python")
        self.assertTrue(os.readlink(link).endswith("/python3"))

    def test_missing_python_is_installed_then_still_missing_fails(self):
        result = self.run_hook("pre-install", "01-dib-python",
                               env={"DIB_PYTHON_VERSION": "0.dibtest"})
        self.assertHookFailed(result, exit_code=1)
        self.assertCalled("install-packages", "python0.dibtest", exact=True)
        self.assertOutputContains("Could not find a python0.dibtest executable")

    def test_other_distributions_do_not_install(self):
        self.run_hook("pre-install", "01-dib-python",
                      env={"DIB_PYTHON_VERSION": "0.dibtest", "DISTRO_NAME": "fedora"})
        self.assertHookFailed(exit_code=1)
        self.assertNotCalled("install-packages")


class TestDibPythonCleanup(HookTestCase):
    """cleanup.d/50-dib-python."""

    element = ELEMENT
    stub_commands = ()

    def test_link_removed_python_kept(self):
        self.root.write("/usr/bin/python3", "", mode=0o755)
        os.symlink("/usr/bin/python3", self.root.join("/usr/local/bin/dib-python"))
        self.run_hook("cleanup", "50-dib-python")
        self.assertHookSucceeded()
        self.assertFileAbsent("/usr/local/bin/dib-python")
        self.assertFileExists("/usr/bin/python3")

    def test_no_link_is_fine(self):
        self.run_hook("cleanup", "50-dib-python")
        self.assertHookSucceeded()
