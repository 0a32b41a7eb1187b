"""Unit tests for the dib-init-system element's hooks (dib.testing: no network)."""
import os
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


class InitScriptsCase(HookTestCase):
    element = ELEMENT
    stub_commands = ("rc-update", "systemctl")

    def element_with_scripts(self, files):
        """The element as a build merges it: other elements' init-scripts/."""
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "dib-init-system"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        for name, text in files.items():
            path = copy / "init-scripts" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o755)
        return copy


class TestReportInitSystem(InitScriptsCase):
    """pre-install.d/04-dib-init-system."""

    def test_script_prints_the_init_system(self):
        if os.geteuid() != 0:
            self.skipTest("chown root:root needs root, as in a real build")
        self.root.write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        self.root.write("/etc/group", "root:x:0:\n")
        self.run_hook("pre-install", "04-dib-init-system", env={"DIB_INIT_SYSTEM": "openrc"})
        self.assertHookSucceeded()
        self.assertFileMode("/usr/local/bin/dib-init-system", "0755")
        self.assertFileContains("/usr/local/bin/dib-init-system", regex=r"^echo openrc$")

    def test_unknown_init_system_is_refused(self):
        self.run_hook("pre-install", "04-dib-init-system", env={"DIB_INIT_SYSTEM": "runit"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("Unknown DIB_INIT_SYSTEM 'runit'")
        self.assertFileAbsent("/usr/local/bin/dib-init-system")


class TestInstallInitScripts(InitScriptsCase):
    """install.d/20-install-init-scripts."""

    def test_openrc_scripts_to_etc_init_d(self):
        element = self.element_with_scripts({"openrc/dib-test": "#!/sbin/openrc-run\n",
                                             "systemd/dib-test.service": "[Unit]\n"})
        self.run_hook(element, "install", "20-install-init-scripts",
                      env={"DIB_INIT_SYSTEM": "openrc"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir("/etc/init.d"), ["dib-test"])
        self.assertFileMode("/etc/init.d/dib-test", "0755")

    def test_upstart_jobs_to_etc_init(self):
        element = self.element_with_scripts({"upstart/dib-test.conf": "start on runlevel\n"})
        self.run_hook(element, "install", "20-install-init-scripts",
                      env={"DIB_INIT_SYSTEM": "upstart"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/init/dib-test.conf"), "start on runlevel\n")

    def test_systemd_units(self):
        element = self.element_with_scripts({"systemd/dib-test.service": "[Unit]\n"})
        self.run_hook(element, "install", "20-install-init-scripts")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/usr/lib/systemd/system/dib-test.service"), "[Unit]\n")

    def test_no_scripts_for_this_init_system(self):
        element = self.element_with_scripts({"openrc/dib-test": "#!/sbin/openrc-run\n"})
        before = self.root.snapshot()
        self.run_hook(element, "install", "20-install-init-scripts",
                      env={"DIB_INIT_SYSTEM": "sysv"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.snapshot(), before)


class TestEnableInitScripts(InitScriptsCase):
    """post-install.d/10-enable-init-scripts."""

    def test_openrc_scripts_added_to_default_runlevel(self):
        element = self.element_with_scripts({"openrc/dib-a": "x\n", "openrc/dib-b": "x\n"})
        self.run_hook(element, "post-install", "10-enable-init-scripts",
                      env={"DIB_INIT_SYSTEM": "openrc"})
        self.assertHookSucceeded()
        self.assertCalled("rc-update", "add", "dib-a", "default", exact=True)
        self.assertCalled("rc-update", "add", "dib-b", "default", exact=True)
        self.assertEqual(len(self.stubs.calls("rc-update")), 2)

    def test_systemd_needs_nothing(self):
        element = self.element_with_scripts({"systemd/dib-test.service": "[Unit]\n"})
        self.run_hook(element, "post-install", "10-enable-init-scripts")
        self.assertHookSucceeded()
        self.assertEqual(self.stubs.calls(), [])

    def test_rc_update_failure_fails_the_hook(self):
        self.stubs.add("rc-update", exit_code=1)
        element = self.element_with_scripts({"openrc/dib-a": "x\n"})
        self.run_hook(element, "post-install", "10-enable-init-scripts",
                      env={"DIB_INIT_SYSTEM": "openrc"})
        self.assertHookFailed()
