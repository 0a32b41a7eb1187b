"""Unit tests for select-boot-kernel-initrd (dib.testing: no root, no network)."""
import shutil
from pathlib import Path

import fixtures

from dib.elements import shipped_hooks_dir
from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


class TestCopyAndRemove(HookTestCase):
    """extra-data.d/99-copy-dib-img-functions and cleanup.d/99-remove-dib-img-functions."""

    element = ELEMENT
    stub_commands = ()

    def test_library_in_the_image_then_gone(self):
        self.run_hook("extra-data", "99-copy-dib-img-functions")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/lib/diskimage-builder/img-functions"),
                         (shipped_hooks_dir() / "lib" / "img-functions").read_text())
        self.run_hook("cleanup", "99-remove-dib-img-functions")
        self.assertHookSucceeded()
        self.assertFileAbsent("/lib/diskimage-builder")

    def test_cleanup_keeps_other_files(self):
        self.root.write("/lib/diskimage-builder/img-functions", "")
        self.root.write("/lib/diskimage-builder/other", "keep")
        self.run_hook("cleanup", "99-remove-dib-img-functions")
        self.assertHookSucceeded()
        self.assertFileAbsent("/lib/diskimage-builder/img-functions")
        self.assertFileExists("/lib/diskimage-builder/other")


class TestCommand(HookTestCase):
    """bin/select-boot-kernel-initrd, called by an image hook. (The sandbox's
    /lib is the host's, so the found-kernel case is the test-element's.)"""

    stub_commands = ()

    def call_from_image_hook(self):
        element = Path(self.useFixture(fixtures.TempDir()).path) / "caller"
        shutil.copytree(ELEMENT / "bin", element / "bin")
        (element / "README.rst").write_text("x\n")
        hook = element / "post-install.d" / "10-call"
        hook.parent.mkdir()
        hook.write_text("#!/bin/bash\nset -eu\nout=$(select-boot-kernel-initrd)\necho \"GOT=$out\"\n")
        hook.chmod(0o755)
        return self.run_hook(element, "post-install", "10-call")

    def test_without_the_library(self):
        result = self.call_from_image_hook()
        self.assertHookFailed(result)
        self.assertIn("/lib/diskimage-builder/img-functions is missing", result.output)
