"""Unit tests for the dynamic-login element (dib.testing: no root, no network)."""
import base64
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
SCRIPT = "/usr/local/bin/dynamic-login"
KEYS = "/root/.ssh/authorized_keys"
HASH = "$6$saltsalt$" + "x" * 86
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVuLWtleQ me@laptop"


class TestEnableServices(HookTestCase):
    """install.d/70-enable-dynamic-login-services."""

    element = ELEMENT
    stub_commands = ("systemctl", "update-rc.d")

    def test_systemd(self):
        self.run_hook("install", "70-enable-dynamic-login-services")
        self.assertHookSucceeded()
        self.assertCalled("systemctl", "enable", "dynamic-login.service", exact=True)

    def test_sysv(self):
        self.run_hook("install", "70-enable-dynamic-login-services",
                      env={"DIB_INIT_SYSTEM": "sysv"})
        self.assertHookSucceeded()
        self.assertCalled("update-rc.d", "dynamic-login.init", "defaults", exact=True)

    def test_upstart_needs_nothing(self):
        self.run_hook("install", "70-enable-dynamic-login-services",
                      env={"DIB_INIT_SYSTEM": "upstart"})
        self.assertHookSucceeded()
        self.assertEqual(self.stubs.calls(), [])


class TestBootScript(HookTestCase):
    """static/usr/local/bin/dynamic-login, run in the fake root on a given command line."""

    element = ELEMENT
    stub_commands = ("chpasswd", "restorecon")

    def boot(self, cmdline):
        target = self.root.join(SCRIPT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ELEMENT / "static" / SCRIPT.lstrip("/"), target)
        self.root.write("/run/test-cmdline", cmdline + "\n")
        probe = Path(self.useFixture(fixtures.TempDir()).path) / "boot-probe"
        hook = probe / "install.d" / "10-run"
        hook.parent.mkdir(parents=True)
        hook.write_text(f"#!/bin/bash\nDYNAMIC_LOGIN_CMDLINE=/run/test-cmdline exec {SCRIPT}\n")
        hook.chmod(0o755)
        return self.run_hook(probe, "install", "10-run")

    def test_nothing_on_the_command_line_changes_nothing(self):
        self.boot("BOOT_IMAGE=/vmlinuz root=UUID=1234 ro console=ttyS0")
        self.assertHookSucceeded()
        self.assertNotCalled("chpasswd")
        self.assertFileAbsent("/root/.ssh")

    def test_base64_password_hash(self):
        encoded = base64.b64encode(HASH.encode()).decode()
        self.boot(f"ro rootpwd={encoded} quiet")
        self.assertHookSucceeded()
        self.assertCalled("chpasswd", "-e", exact=True, stdin=f"root:{HASH}\n")

    def test_quoted_raw_hash(self):
        self.boot(f'ro rootpwd="{HASH}" quiet')
        self.assertHookSucceeded()
        self.assertCalled("chpasswd", "-e", exact=True, stdin=f"root:{HASH}\n")

    def test_similar_parameter_names_do_not_count(self):
        self.boot("myrootpwd=abc sshkeys=\"ssh-rsa AAAA x\"")
        self.assertHookSucceeded()
        self.assertNotCalled("chpasswd")
        self.assertFileAbsent(KEYS)

    def test_ssh_key_is_added_once(self):
        self.root.write(KEYS, "ssh-rsa AAAAB3Nza other@host\n")
        for _ in range(2):
            self.boot(f'ro sshkey="{KEY}" console=ttyS0')
            self.assertHookSucceeded()
        self.assertEqual(self.root.read(KEYS), f"ssh-rsa AAAAB3Nza other@host\n{KEY}\n")
        self.assertFileMode("/root/.ssh", "0700")
        self.assertFileMode(KEYS, "0600")
        self.assertCalled("restorecon", "-R", "/root/.ssh", exact=True)

    def test_password_and_key_together(self):
        encoded = base64.b64encode(HASH.encode()).decode()
        self.boot(f'sshkey="{KEY}" rootpwd="{encoded}"')
        self.assertHookSucceeded()
        self.assertCalled("chpasswd", "-e")
        self.assertFileContains(KEYS, KEY)

    def test_garbage_password_is_reported_and_the_key_still_added(self):
        self.boot(f'rootpwd=not*base64! sshkey="{KEY}"')
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("rootpwd is neither a password hash nor base64")
        self.assertNotCalled("chpasswd")
        self.assertFileContains(KEYS, KEY)
