"""Unit tests for the manifests element's hooks (dib.testing: no network).

tests/unit/test_hooks_elements.py already checks the copy of the manifests
and the 0600 mode of dib_environment (as root); these cover the rest.
"""
import os
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


class TestManifestDir(HookTestCase):
    """extra-data.d/20-manifest-dir."""

    element = ELEMENT
    stub_commands = ()

    def test_default_dir_created(self):
        self.run_hook("extra-data", "20-manifest-dir")
        self.assertHookSucceeded()
        self.assertTrue(self.root.join("/etc/dib-manifests").is_dir())

    def test_dir_from_the_environment(self):
        self.run_hook("extra-data", "20-manifest-dir",
                      env={"DIB_MANIFEST_IMAGE_DIR": "/var/lib/dib/manifests"})
        self.assertHookSucceeded()
        self.assertTrue(self.root.join("/var/lib/dib/manifests").is_dir())
        self.assertFileAbsent("/etc/dib-manifests")


class TestCopyManifests(HookTestCase):
    """cleanup.d/01-copy-manifests-dir."""

    element = ELEMENT
    stub_commands = ()

    def test_missing_manifest_dir_is_an_error(self):
        self.run_hook("cleanup", "01-copy-manifests-dir",
                      env={"DIB_MANIFEST_SAVE_DIR": "/nonexistent/out.d/"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("/etc/dib-manifests does not exist")

    def test_copies_belong_to_the_sudo_user(self):
        if os.geteuid() != 0:
            self.skipTest("chown needs root, as in a real build")
        self.root.write("/etc/dib-manifests/dib-manifest-dpkg-img", "{}\n")
        save = Path(self.useFixture(fixtures.TempDir()).path) / "img.d"
        # The save directory is next to the image, outside the sandbox's view.
        self.run_hook("cleanup", "01-copy-manifests-dir", sandbox=False,
                      env={"DIB_MANIFEST_SAVE_DIR": f"{save}/", "SUDO_UID": "1234",
                           "SUDO_GID": "2345", "DIB_ARGS": "-o img debian-minimal"})
        self.assertHookSucceeded()
        copy = save / "dib-manifests" / "dib-manifest-dpkg-img"
        self.assertEqual(copy.read_text(), "{}\n")
        self.assertEqual((copy.stat().st_uid, copy.stat().st_gid), (1234, 2345))
        self.assertEqual((save / "dib-manifests/dib_arguments").read_text(),
                         "-o img debian-minimal\n")
        # Inside the image the manifests stay root's, readable by root only.
        self.assertFileMode("/etc/dib-manifests/dib-manifest-dpkg-img", "0600")
        self.assertFileMode("/etc/dib-manifests/dib_arguments", "0600")
