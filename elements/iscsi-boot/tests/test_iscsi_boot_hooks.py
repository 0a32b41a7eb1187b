"""Unit tests for the iscsi-boot element (dib.testing: no root, no network)."""
import subprocess
from pathlib import Path

import yaml

from dib.elements import package_installs
from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
ELEMENTS = ELEMENT.parent


def sourced(distro, elements, variable, modules=None):
    """A variable after dracut-regenerate's and this element's environment
    files, sourced in the build's order."""
    files = [ELEMENTS / "dracut-regenerate" / "environment.d" / "10-dracut-regenerate",
             ELEMENT / "environment.d" / "10-iscsi-boot.bash"]
    script = "".join(f"source {f}\n" for f in files) + f'printf "%s" "${variable}"'
    env = {"PATH": "/usr/bin:/bin", "DISTRO_NAME": distro, "IMAGE_ELEMENT": elements}
    if modules is not None:
        env["DIB_DRACUT_ENABLED_MODULES"] = modules
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                          env=env).stdout


def dracut_modules(distro, elements, modules=None):
    text = sourced(distro, elements, "DIB_DRACUT_ENABLED_MODULES", modules)
    return [entry["name"] for entry in yaml.safe_load(text) or []]


def sourced_flag(distro, elements):
    return sourced(distro, elements, "DIB_ISCSI_BOOT_DRACUT")


def test_dracut_gets_network_and_iscsi_after_the_defaults():
    assert dracut_modules("debian", "debian-minimal iscsi-boot dracut-regenerate") == \
        ["crypt", "lvm", "network", "iscsi"]


def test_red_hat_always_uses_dracut():
    assert dracut_modules("centos", "centos iscsi-boot dracut-regenerate")[-2:] == \
        ["network", "iscsi"]


def test_no_dracut_modules_with_initramfs_tools():
    assert dracut_modules("debian", "debian-minimal iscsi-boot") == ["crypt", "lvm"]


def test_an_empty_list_takes_the_modules():
    assert dracut_modules("debian", "iscsi-boot dracut-regenerate", modules="[]") == \
        ["network", "iscsi"]


def test_dracut_network_only_with_dracut():
    data = yaml.safe_load((ELEMENT / "package-installs.yaml").read_text())
    env = {"ARCH": "amd64"}
    for elements, wanted in (("debian-minimal iscsi-boot dracut-regenerate", True),
                             ("debian-minimal iscsi-boot", False)):
        env["DIB_ISCSI_BOOT_DRACUT"] = sourced_flag("debian", elements)
        phases = package_installs.squash([("iscsi-boot", data)], env=env, arch="amd64")
        names = {pkg for pkg, *_ in phases["install.d"]["install"]}
        assert ("dracut-network" in names) is wanted, elements
        assert ("dbus" in names) is wanted, elements
        assert "open-iscsi" in names


class TestCheckDracut(HookTestCase):
    """extra-data.d/50-check-dracut-regenerate."""

    element = ELEMENT
    stub_commands = ()

    def test_red_hat_without_dracut_regenerate_is_an_error(self):
        self.run_hook("extra-data", "50-check-dracut-regenerate",
                      env={"DISTRO_NAME": "centos", "IMAGE_ELEMENT": "centos iscsi-boot"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("iscsi-boot (extra-data.d/50-check-dracut-regenerate): on centos")
        self.assertOutputContains("add the dracut-regenerate element")

    def test_red_hat_with_dracut_regenerate(self):
        self.run_hook("extra-data", "50-check-dracut-regenerate",
                      env={"DISTRO_NAME": "rocky",
                           "IMAGE_ELEMENT": "rocky iscsi-boot dracut-regenerate"})
        self.assertHookSucceeded()

    def test_debian_needs_nothing(self):
        self.run_hook("extra-data", "50-check-dracut-regenerate",
                      env={"IMAGE_ELEMENT": "debian-minimal iscsi-boot"})
        self.assertHookSucceeded()


class TestInitramfsTools(HookTestCase):
    """post-install.d/50-open-iscsi-config."""

    element = ELEMENT
    stub_commands = ("update-initramfs",)

    def test_debian_logs_in_from_the_initramfs(self):
        self.run_hook("post-install", "50-open-iscsi-config",
                      env={"IMAGE_ELEMENT": "debian-minimal iscsi-boot"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/iscsi/iscsi.initramfs"), "ISCSI_AUTO=true\n")
        self.assertCalled("update-initramfs", "-u", exact=True)

    def test_dracut_build_leaves_it_to_dracut(self):
        self.run_hook("post-install", "50-open-iscsi-config",
                      env={"IMAGE_ELEMENT": "debian-minimal iscsi-boot dracut-regenerate"})
        self.assertHookSucceeded()
        self.assertNotCalled("update-initramfs")
        self.assertFileAbsent("/etc/iscsi/iscsi.initramfs")

    def test_other_distributions_untouched(self):
        self.run_hook("post-install", "50-open-iscsi-config", env={"DISTRO_NAME": "centos"})
        self.assertHookSucceeded()
        self.assertNotCalled("update-initramfs")

    def test_initramfs_failure_fails(self):
        self.stubs.add("update-initramfs", exit_code=1)
        self.run_hook("post-install", "50-open-iscsi-config")
        self.assertHookFailed()


class TestGrubCmdline(HookTestCase):
    """finalise.d/51-open-iscsi-config."""

    element = ELEMENT
    stub_commands = ("grub2-mkconfig",)

    def test_red_hat_cmdline(self):
        self.root.write("/etc/default/grub", 'GRUB_TIMEOUT=1\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n')
        self.run_hook("finalise", "51-open-iscsi-config", env={"DISTRO_NAME": "centos"})
        self.assertHookSucceeded()
        self.assertFileContains("/etc/default/grub",
                                'GRUB_CMDLINE_LINUX_DEFAULT="quiet rd.iscsi.firmware=1"\n')
        self.assertCalled("grub2-mkconfig", "-o", "/boot/grub2/grub.cfg", exact=True)

    def test_not_added_twice(self):
        self.root.write("/etc/default/grub", 'GRUB_CMDLINE_LINUX_DEFAULT="rd.iscsi.firmware=1"\n')
        self.run_hook("finalise", "51-open-iscsi-config", env={"DISTRO_NAME": "rocky"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/default/grub"),
                         'GRUB_CMDLINE_LINUX_DEFAULT="rd.iscsi.firmware=1"\n')

    def test_debian_untouched(self):
        self.run_hook("finalise", "51-open-iscsi-config")
        self.assertHookSucceeded()
        self.assertNotCalled("grub2-mkconfig")
