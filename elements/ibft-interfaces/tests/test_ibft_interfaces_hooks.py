"""Unit tests for the ibft-interfaces element (dib.testing: no root, no network)."""
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
SCRIPT = "/usr/local/sbin/init-ibft-interfaces.sh"


class TestEnableService(HookTestCase):
    """post-install.d/70-init-ibft-interfaces."""

    element = ELEMENT
    stub_commands = ("systemctl", "update-rc.d")

    def test_systemd(self):
        self.run_hook("post-install", "70-init-ibft-interfaces")
        self.assertHookSucceeded()
        self.assertCalled("systemctl", "enable", "init-ibft-interfaces.service", exact=True)

    def test_sysv(self):
        self.run_hook("post-install", "70-init-ibft-interfaces",
                      env={"DIB_INIT_SYSTEM": "sysv"})
        self.assertHookSucceeded()
        self.assertCalled("update-rc.d", "init-ibft-interfaces.init", "defaults", exact=True)
        self.assertNotCalled("systemctl")

    def test_upstart_needs_nothing(self):
        self.run_hook("post-install", "70-init-ibft-interfaces",
                      env={"DIB_INIT_SYSTEM": "upstart"})
        self.assertHookSucceeded()
        self.assertEqual(self.stubs.calls(), [])

    def test_unsupported_init_system(self):
        self.run_hook("post-install", "70-init-ibft-interfaces",
                      env={"DIB_INIT_SYSTEM": "openrc"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_INIT_SYSTEM 'openrc' is not supported")

    def test_enable_failure_fails_the_hook(self):
        self.stubs.add("systemctl", exit_code=1)
        self.run_hook("post-install", "70-init-ibft-interfaces")
        self.assertHookFailed()


class TestBootScript(HookTestCase):
    """static/usr/local/sbin/init-ibft-interfaces.sh, run in the fake root."""

    element = ELEMENT
    stub_commands = ("iscsistart", "udevadm")

    def boot(self):
        """Put the script where install-static puts it and run it, as the unit does."""
        target = self.root.join(SCRIPT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ELEMENT / "static" / SCRIPT.lstrip("/"), target)
        probe = Path(self.useFixture(fixtures.TempDir()).path) / "boot-probe"
        hook = probe / "install.d" / "10-run"
        hook.parent.mkdir(parents=True)
        hook.write_text(f"#!/bin/bash\nexec {SCRIPT}\n")
        hook.chmod(0o755)
        return self.run_hook(probe, "install", "10-run")

    def test_interfaces_configured_when_the_firmware_has_a_table(self):
        self.boot()
        self.assertHookSucceeded()
        self.assertCallOrder("iscsistart", "iscsistart", "udevadm")
        self.assertCalled("iscsistart", "-f", exact=True)
        self.assertCalled("iscsistart", "-N", exact=True)
        self.assertCalled("udevadm", "settle", exact=True)

    def test_no_table_is_not_an_error(self):
        self.stubs.add("iscsistart", exit_code=1)
        self.boot()
        self.assertHookSucceeded()
        self.assertNotCalled("iscsistart", "-N")
        self.assertOutputContains("no iBFT")

    def test_configuration_failure_is_reported(self):
        self.stubs.add("iscsistart", script='[ "$1" = -f ] || exit 7')
        self.boot()
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("could not configure the iBFT interfaces")
        self.assertNotCalled("udevadm")

    def test_missing_iscsistart_is_reported(self):
        if shutil.which("iscsistart", path="/usr/sbin:/usr/bin:/sbin:/bin"):
            self.skipTest("this host has iscsistart, so it cannot be missing in the sandbox")
        (self.stubs.bin_dir / "iscsistart").unlink()
        self.boot()
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("iscsistart is not installed")
