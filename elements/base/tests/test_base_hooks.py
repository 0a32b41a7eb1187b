"""Unit tests for the base element's hooks (dib.testing: no root, no network)."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


class TestBaselineTools(HookTestCase):
    """pre-install.d/03-baseline-tools: https transport only on old releases."""

    element = ELEMENT
    stub_commands = ("apt-get", "install-packages")

    def test_current_release_needs_nothing(self):
        self.run_hook("pre-install", "03-baseline-tools")
        self.assertHookSucceeded()
        self.assertNotCalled("apt-get")
        self.assertNotCalled("install-packages")

    def test_old_debian_release_gets_https_transport(self):
        self.run_hook("pre-install", "03-baseline-tools", env={"DIB_RELEASE": "stretch"})
        self.assertHookSucceeded()
        self.assertCalled("apt-get", "-y", "update", exact=True)
        self.assertCalled("install-packages", "apt-transport-https",
                          "software-properties-common", exact=True)
        self.assertCallOrder("apt-get", "install-packages")

    def test_old_ubuntu_release_gets_https_transport(self):
        self.run_hook("pre-install", "03-baseline-tools",
                      env={"DISTRO_NAME": "ubuntu", "DIB_RELEASE": "xenial"})
        self.assertHookSucceeded()
        self.assertCalled("install-packages", "apt-transport-https", times=1)

    def test_other_distributions_are_left_alone(self):
        self.run_hook("pre-install", "03-baseline-tools",
                      env={"DISTRO_NAME": "fedora", "DIB_RELEASE": "stretch"})
        self.assertHookSucceeded()
        self.assertNotCalled("apt-get")
        self.assertNotCalled("install-packages")

    def test_failed_index_update_fails_the_hook(self):
        self.stubs.add("apt-get", exit_code=100, stderr="E: no network\n")
        self.run_hook("pre-install", "03-baseline-tools", env={"DIB_RELEASE": "jessie"})
        self.assertHookFailed()
        self.assertNotCalled("install-packages")


class TestBaselineEnvironment(HookTestCase):
    """install.d/00-baseline-environment: the iSCSI initiator, via pkg-map."""

    element = ELEMENT
    stub_commands = ("install-packages",)

    def test_installs_the_mapped_iscsi_package(self):
        self.run_hook("install", "00-baseline-environment")
        self.assertHookSucceeded()
        self.assertCalled("install-packages", "-m", "base", "iscsi_package", exact=True)

    def test_skipped_when_asked(self):
        self.run_hook("install", "00-baseline-environment",
                      env={"DIB_SKIP_BASE_PACKAGE_INSTALL": "1"})
        self.assertHookSucceeded()
        self.assertNotCalled("install-packages")

    def test_install_failure_fails_the_hook(self):
        self.stubs.add("install-packages", exit_code=1)
        self.run_hook("install", "00-baseline-environment")
        self.assertHookFailed()


class TestUpToDate(HookTestCase):
    """install.d/00-up-to-date: upgrade everything unless told not to."""

    element = ELEMENT
    stub_commands = ("install-packages",)

    def test_upgrades_by_default(self):
        self.run_hook("install", "00-up-to-date")
        self.assertHookSucceeded()
        self.assertCalled("install-packages", "-u", exact=True, times=1)

    def test_avoid_packages_update(self):
        self.run_hook("install", "00-up-to-date", env={"DIB_AVOID_PACKAGES_UPDATE": "1"})
        self.assertHookSucceeded()
        self.assertNotCalled("install-packages")

    def test_upgrade_failure_fails_the_hook(self):
        self.stubs.add("install-packages", exit_code=100)
        self.run_hook("install", "00-up-to-date")
        self.assertHookFailed()


class TestCloudInit(HookTestCase):
    """install.d/10-cloud-init: cloud.cfg.d, and manage_etc_hosts on request."""

    element = ELEMENT
    stub_commands = ()

    def test_config_dir_without_hosts_setting(self):
        self.run_hook("install", "10-cloud-init")
        self.assertHookSucceeded()
        self.assertTrue(self.root.join("/etc/cloud/cloud.cfg.d").is_dir())
        self.assertEqual(self.root.listdir("/etc/cloud/cloud.cfg.d"), [])

    def test_manage_etc_hosts(self):
        self.run_hook("install", "10-cloud-init", env={"DIB_CLOUD_INIT_ETC_HOSTS": "localhost"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/cloud/cloud.cfg.d/10_etc_hosts.cfg"),
                         "manage_etc_hosts: localhost\n")

    def test_existing_config_is_kept(self):
        self.root.write("/etc/cloud/cloud.cfg.d/90_custom.cfg", "datasource_list: [None]\n")
        self.run_hook("install", "10-cloud-init", env={"DIB_CLOUD_INIT_ETC_HOSTS": "true"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/cloud/cloud.cfg.d/90_custom.cfg"),
                         "datasource_list: [None]\n")
        self.assertFileContains("/etc/cloud/cloud.cfg.d/10_etc_hosts.cfg",
                                regex=r"^manage_etc_hosts: true$")
