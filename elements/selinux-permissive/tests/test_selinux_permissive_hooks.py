"""Unit tests for the selinux-permissive element's hook (dib.testing: no root, no network)."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
HOOK = ("pre-install", "11-selinux-permissive")
CONFIG = "/etc/selinux/config"


class TestSelinuxPermissive(HookTestCase):

    element = ELEMENT
    stub_commands = ()

    def test_enforcing_becomes_permissive_and_the_rest_is_kept(self):
        self.root.write(CONFIG, "# This file controls the state of SELinux.\n"
                                "SELINUX=enforcing\nSELINUXTYPE=mls\n")
        self.run_hook(*HOOK, env={"DISTRO_NAME": "centos"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(CONFIG), "# This file controls the state of SELinux.\n"
                                                 "SELINUX=permissive\nSELINUXTYPE=mls\n")

    def test_config_without_the_settings_gets_them(self):
        self.root.write(CONFIG, "# SELINUX=disabled\n")
        self.run_hook(*HOOK, env={"DISTRO_NAME": "fedora"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(CONFIG), "# SELINUX=disabled\nSELINUX=permissive\n"
                                                 "SELINUXTYPE=targeted\n")

    def test_rerun_changes_nothing(self):
        self.root.write(CONFIG, "SELINUX=enforcing\n")
        self.run_hook(*HOOK)
        first = self.root.read(CONFIG)
        self.run_hook(*HOOK)
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(CONFIG), first)

    def test_image_without_selinux_is_left_alone(self):
        before = self.root.snapshot()
        self.run_hook(*HOOK)
        self.assertHookSucceeded()
        self.assertEqual(self.root.snapshot(), before)
        self.assertOutputContains("nothing to do")
