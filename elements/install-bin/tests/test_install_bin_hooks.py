"""Unit tests for the install-bin element's hook (dib.testing: no network)."""
import os
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


class TestInstallBin(HookTestCase):
    """pre-install.d/01-install-bin."""

    element = ELEMENT
    stub_commands = ()

    def element_with_bin(self, files):
        """The element as a build merges it: other elements' bin/ beside the hooks."""
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "install-bin"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        (copy / "bin").mkdir()
        for name, (text, mode) in files.items():
            (copy / "bin" / name).write_text(text)
            (copy / "bin" / name).chmod(mode)
        return copy

    def test_commands_installed_executable(self):
        if os.geteuid() != 0:
            self.skipTest("install -o root -g root needs root, as in a real build")
        self.root.write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        self.root.write("/etc/group", "root:x:0:\n")
        element = self.element_with_bin({"dib-hello": ("#!/bin/sh\necho hello\n", 0o644)})
        self.run_hook(element, "pre-install", "01-install-bin")
        self.assertHookSucceeded()
        self.assertFileMode("/usr/local/bin/dib-hello", "0755")
        self.assertEqual(self.root.read("/usr/local/bin/dib-hello"), "#!/bin/sh\necho hello\n")

    def test_no_bin_dir_changes_nothing(self):
        before = self.root.snapshot()
        self.run_hook("pre-install", "01-install-bin")
        self.assertHookSucceeded()
        self.assertEqual(self.root.snapshot(), before)

    def test_empty_bin_dir_changes_nothing(self):
        before = self.root.snapshot()
        self.run_hook(self.element_with_bin({}), "pre-install", "01-install-bin")
        self.assertHookSucceeded()
        self.assertEqual(self.root.snapshot(), before)
