"""Unit tests for the ubuntu element (dib.testing: no root, no network)."""
import subprocess
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


def datasources(**env):
    script = f"source {ELEMENT / 'environment.d' / '99-cloud-init-datasources.bash'}; " \
             'printf %s "$DIB_CLOUD_INIT_DATASOURCES"'
    return subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, check=True).stdout


def test_ec2_unless_told_otherwise():
    assert datasources() == "Ec2"
    assert datasources(DIB_CLOUD_INIT_DATASOURCES="ConfigDrive, OpenStack") == \
        "ConfigDrive, OpenStack"


class TestNoCloudImage(HookTestCase):
    """root.d/06-ubuntu-no-cloud-image."""

    element = ELEMENT
    stub_commands = ()

    def test_nothing_set(self):
        self.run_hook("root", "06-ubuntu-no-cloud-image")
        self.assertHookSucceeded()

    def test_local_image_is_refused(self):
        self.run_hook("root", "06-ubuntu-no-cloud-image",
                      env={"DIB_LOCAL_IMAGE": "/srv/noble-server-cloudimg-amd64.squashfs"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("ubuntu (root.d/06-ubuntu-no-cloud-image): DIB_LOCAL_IMAGE is "
                                  "set, but this ubuntu element bootstraps Ubuntu from "
                                  "DIB_DISTRIBUTION_MIRROR")

    def test_cloud_images_url_is_refused(self):
        self.run_hook("root", "06-ubuntu-no-cloud-image",
                      env={"DIB_CLOUD_IMAGES": "http://images.example.com/noble/current"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("unset DIB_CLOUD_IMAGES")
