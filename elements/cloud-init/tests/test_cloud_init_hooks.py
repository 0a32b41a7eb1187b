"""Unit tests for the cloud-init element (dib.testing: no root, no network)."""
from pathlib import Path

import yaml

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
PWAUTH = "/etc/cloud/cloud.cfg.d/60-dib-ssh-pwauth.cfg"
KEYTYPES = "/etc/cloud/cloud.cfg.d/60-dib-ssh-genkeytypes.cfg"


class TestEnable(HookTestCase):
    """post-install.d/20-enable-cloud-init."""

    element = ELEMENT
    stub_commands = ("systemctl", "rc-update")

    def enabled(self):
        return [c.args[1] for c in self.stubs.calls("systemctl")]

    def test_older_cloud_init_units(self):
        self.root.write("/usr/lib/systemd/system/cloud-init.service", "[Unit]\n")
        self.run_hook("post-install", "20-enable-cloud-init")
        self.assertHookSucceeded()
        self.assertEqual(sorted(self.enabled()),
                         ["cloud-config.service", "cloud-final.service",
                          "cloud-init-local.service", "cloud-init.service"])
        self.assertCalled("systemctl", "enable", "cloud-init.service", exact=True)

    def test_split_units_of_newer_cloud_init(self):
        self.root.write("/usr/lib/systemd/system/cloud-init-main.service", "[Unit]\n")
        self.root.write("/usr/lib/systemd/system/cloud-init-network.service", "[Unit]\n")
        self.run_hook("post-install", "20-enable-cloud-init", env={"DIB_RELEASE": "trixie"})
        self.assertHookSucceeded()
        self.assertEqual(sorted(self.enabled()),
                         ["cloud-config.service", "cloud-final.service",
                          "cloud-init-local.service", "cloud-init-main.service",
                          "cloud-init-network.service"])

    def test_openrc_runlevels(self):
        self.run_hook("post-install", "20-enable-cloud-init",
                      env={"DIB_INIT_SYSTEM": "openrc", "DISTRO_NAME": "gentoo"})
        self.assertHookSucceeded()
        self.assertCalled("rc-update", "add", "cloud-init-local", "boot", exact=True)
        self.assertCalled("rc-update", "add", "cloud-final", "default", exact=True)
        self.assertNotCalled("systemctl")

    def test_enable_failure_fails(self):
        self.stubs.add("systemctl", exit_code=1)
        self.run_hook("post-install", "20-enable-cloud-init")
        self.assertHookFailed()


class TestPasswordAuth(HookTestCase):
    """post-install.d/21-cloud-init-allow-password-auth."""

    element = ELEMENT
    stub_commands = ()

    def run_with(self, value):
        return self.run_hook("post-install", "21-cloud-init-allow-password-auth",
                             env={"DIB_CLOUD_INIT_ALLOW_SSH_PWAUTH": value})

    def test_yes_values_allow_passwords(self):
        for value in ("1", "yes", "True"):
            self.run_with(value)
            self.assertHookSucceeded()
            self.assertEqual(yaml.safe_load(self.root.read(PWAUTH)), {"ssh_pwauth": True})
            self.root.join(PWAUTH).unlink()

    def test_unset_or_no_leaves_the_default(self):
        for value in ("", "0", "no", "false"):
            self.run_with(value)
            self.assertHookSucceeded()
            self.assertFileAbsent(PWAUTH)

    def test_cloud_cfg_is_not_edited(self):
        self.root.write("/etc/cloud/cloud.cfg", "ssh_pwauth: false\n")
        self.run_with("1")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/cloud/cloud.cfg"), "ssh_pwauth: false\n")

    def test_other_values_are_an_error(self):
        self.run_with("enabled")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("cloud-init (post-install.d/21-cloud-init-allow-password-auth): "
                                  "DIB_CLOUD_INIT_ALLOW_SSH_PWAUTH='enabled' is not a yes/no value")
        self.assertFileAbsent(PWAUTH)


class TestKeyTypes(HookTestCase):
    """post-install.d/22-cloud-init-ssh_genkeytypes."""

    element = ELEMENT
    stub_commands = ()

    def test_three_key_types(self):
        self.run_hook("post-install", "22-cloud-init-ssh_genkeytypes")
        self.assertHookSucceeded()
        self.assertEqual(yaml.safe_load(self.root.read(KEYTYPES)),
                         {"ssh_genkeytypes": ["rsa", "ecdsa", "ed25519"]})
