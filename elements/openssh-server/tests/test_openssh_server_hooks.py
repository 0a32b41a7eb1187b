"""Unit tests for the openssh-server element's hooks (dib.testing: no root, no network)."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
CONFIG = "/etc/ssh/sshd_config"
DROPIN = "/etc/ssh/sshd_config.d/50-dib-hardening.conf"


class TestEnableSshd(HookTestCase):
    """post-install.d/80-enable-sshd-service."""

    element = ELEMENT
    stub_commands = ("systemctl", "rc-update")

    def test_debian_systemd_unit_is_ssh(self):
        self.run_hook("post-install", "80-enable-sshd-service")
        self.assertHookSucceeded()
        self.assertCalled("systemctl", "enable", "ssh.service", exact=True, times=1)

    def test_other_systemd_distributions_use_sshd(self):
        self.run_hook("post-install", "80-enable-sshd-service", env={"DISTRO_NAME": "fedora"})
        self.assertHookSucceeded()
        self.assertCalled("systemctl", "enable", "sshd.service", exact=True)

    def test_openrc(self):
        self.run_hook("post-install", "80-enable-sshd-service",
                      env={"DIB_INIT_SYSTEM": "openrc", "DISTRO_NAME": "gentoo"})
        self.assertHookSucceeded()
        self.assertCalled("rc-update", "add", "sshd", "default", exact=True)
        self.assertNotCalled("systemctl")

    def test_sysv_needs_nothing(self):
        self.run_hook("post-install", "80-enable-sshd-service", env={"DIB_INIT_SYSTEM": "sysv"})
        self.assertHookSucceeded()
        self.assertEqual(self.stubs.calls(), [])

    def test_unknown_init_system_fails(self):
        self.run_hook("post-install", "80-enable-sshd-service", env={"DIB_INIT_SYSTEM": "runit"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("Unknown DIB_INIT_SYSTEM runit")

    def test_enable_failure_fails_the_hook(self):
        self.stubs.add("systemctl", exit_code=1)
        self.run_hook("post-install", "80-enable-sshd-service")
        self.assertHookFailed()


class TestHardenSshd(HookTestCase):
    """post-install.d/99-harden-sshd-config."""

    element = ELEMENT
    stub_commands = ()

    def test_dropin_when_config_includes_the_directory(self):
        self.root.write(CONFIG, "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n")
        self.root.mkdir("/etc/ssh/sshd_config.d")
        self.run_hook("post-install", "99-harden-sshd-config")
        self.assertHookSucceeded()
        self.assertFileMode(DROPIN, "0644")
        lines = self.root.read(DROPIN).splitlines()
        self.assertEqual([line.split()[0] for line in lines], ["MACs", "Ciphers", "KexAlgorithms"])
        self.assertNotIn("hmac-sha1", self.root.read(DROPIN))
        self.assertFileContains(DROPIN, regex=r"^Ciphers chacha20-poly1305@openssh.com,")
        self.assertEqual(self.root.read(CONFIG),
                         "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n")

    def test_rerun_rewrites_the_dropin(self):
        self.root.write(CONFIG, "Include /etc/ssh/sshd_config.d/*.conf\n")
        self.root.mkdir("/etc/ssh/sshd_config.d")
        for _ in range(2):
            self.run_hook("post-install", "99-harden-sshd-config")
            self.assertHookSucceeded()
        self.assertEqual(len(self.root.read(DROPIN).splitlines()), 3)

    def test_old_config_edited_in_place(self):
        self.root.write(CONFIG, "Port 22\nMACs hmac-md5\n#Ciphers aes128-cbc\n")
        for _ in range(2):
            self.run_hook("post-install", "99-harden-sshd-config")
            self.assertHookSucceeded()
        text = self.root.read(CONFIG)
        self.assertFileAbsent(DROPIN)
        self.assertNotIn("hmac-md5", text)
        self.assertEqual(text.count("\nMACs "), 1)
        self.assertEqual(text.count("\nCiphers "), 1)
        self.assertEqual(text.count("\nKexAlgorithms "), 1)
        self.assertIn("#Ciphers aes128-cbc\n", text)
        self.assertTrue(text.startswith("Port 22\nMACs hmac-sha2-512-etm@openssh.com,"))

    def test_hardening_can_be_switched_off(self):
        self.root.write(CONFIG, "MACs hmac-md5\n")
        self.run_hook("post-install", "99-harden-sshd-config",
                      env={"DIB_OPENSSH_SERVER_HARDENING": "0"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(CONFIG), "MACs hmac-md5\n")

    def test_missing_config_fails(self):
        self.run_hook("post-install", "99-harden-sshd-config")
        self.assertHookFailed()
