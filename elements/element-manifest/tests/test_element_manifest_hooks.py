"""Unit tests for the element-manifest element (dib.testing: no root, no network)."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
HOOK = "75-inject-element-manifest"
ELEMENTS = "base debian-minimal vm element-manifest manifests"


class TestElementManifest(HookTestCase):
    """extra-data.d/75-inject-element-manifest."""

    element = ELEMENT
    stub_commands = ()

    def test_default_path_one_element_a_line(self):
        self.run_hook("extra-data", HOOK, env={"IMAGE_ELEMENT": ELEMENTS})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/dib-manifests/dib-element-manifest"),
                         "base\ndebian-minimal\nvm\nelement-manifest\nmanifests\n")

    def test_follows_the_manifest_dir(self):
        self.run_hook("extra-data", HOOK, env={"IMAGE_ELEMENT": ELEMENTS,
                                              "DIB_MANIFEST_IMAGE_DIR": "/var/lib/manifests"})
        self.assertHookSucceeded()
        self.assertFileContains("/var/lib/manifests/dib-element-manifest", "debian-minimal\n")
        self.assertFileAbsent("/etc/dib-manifests/dib-element-manifest")

    def test_path_from_the_environment(self):
        self.run_hook("extra-data", HOOK, env={"IMAGE_ELEMENT": ELEMENTS,
                                              "DIB_ELEMENT_MANIFEST_PATH": "/opt/build/elements"})
        self.assertHookSucceeded()
        self.assertFileContains("/opt/build/elements", "vm\n")

    def test_relative_path_is_an_error(self):
        self.run_hook("extra-data", HOOK, env={"IMAGE_ELEMENT": ELEMENTS,
                                              "DIB_ELEMENT_MANIFEST_PATH": "etc/elements"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("element-manifest (extra-data.d/75-inject-element-manifest): "
                                  "DIB_ELEMENT_MANIFEST_PATH='etc/elements'")

    def test_path_leaving_the_image_is_an_error(self):
        self.run_hook("extra-data", HOOK, env={"IMAGE_ELEMENT": ELEMENTS,
                                              "DIB_ELEMENT_MANIFEST_PATH": "/../../escape"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("without '..'")
