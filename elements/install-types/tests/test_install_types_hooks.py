"""Unit tests for the install-types element's hook (dib.testing: no root, no network).

tests/unit/test_hooks_elements.py checks DIB_INSTALLTYPE_<prefix> and the
source default; these cover the rest.
"""
import os
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
HOOK = ("extra-data", "99-enable-install-types")
HOOKS_DIR = "/srv/hooks"


class TestEnableInstallTypes(HookTestCase):
    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        # A merged hooks tree; it lives under the fake root to be writable.
        for variant in ("source", "package"):
            self.root.write(f"{HOOKS_DIR}/install.d/my-app-{variant}-install/74-my-app",
                            f"{variant}\n", mode=0o755)
        self.root.write(f"{HOOKS_DIR}/install.d/tool-foo-install/10-tool", "x\n")
        self.env = {"TMP_HOOKS_PATH": str(self.root.join(HOOKS_DIR))}

    def link(self, name):
        return os.readlink(self.root.join(f"{HOOKS_DIR}/install.d/{name}"))

    def test_default_install_type_from_the_environment(self):
        self.run_hook(*HOOK, env=dict(self.env, DIB_DEFAULT_INSTALLTYPE="package"))
        self.assertHookSucceeded()
        self.assertEqual(self.link("74-my-app"), "my-app-package-install/74-my-app")

    def test_per_element_type_beats_the_default(self):
        self.run_hook(*HOOK, env=dict(self.env, DIB_DEFAULT_INSTALLTYPE="package",
                                      DIB_INSTALLTYPE_my_app="source"))
        self.assertHookSucceeded()
        self.assertEqual(self.link("74-my-app"), "my-app-source-install/74-my-app")
        self.assertEqual(self.root.read(f"{HOOKS_DIR}/install.d/74-my-app"), "source\n")

    def test_other_directories_are_not_linked(self):
        self.run_hook(*HOOK, env=self.env)
        self.assertHookSucceeded()
        self.assertFileAbsent(f"{HOOKS_DIR}/install.d/10-tool")

    def test_rerun_replaces_the_link(self):
        self.run_hook(*HOOK, env=dict(self.env, DIB_DEFAULT_INSTALLTYPE="package"))
        self.run_hook(*HOOK, env=dict(self.env, DIB_DEFAULT_INSTALLTYPE="source"))
        self.assertHookSucceeded()
        self.assertEqual(self.link("74-my-app"), "my-app-source-install/74-my-app")

    def test_an_install_type_of_the_elements_own(self):
        # simple-init offers a "repo" type beside source and package.
        self.root.write(f"{HOOKS_DIR}/install.d/my-app-repo-install/74-my-app", "repo\n",
                        mode=0o755)
        self.run_hook(*HOOK, env=dict(self.env, DIB_INSTALLTYPE_my_app="repo"))
        self.assertHookSucceeded()
        self.assertEqual(self.link("74-my-app"), "my-app-repo-install/74-my-app")

    def test_directories_without_a_type_or_a_usable_prefix_are_skipped(self):
        self.root.write(f"{HOOKS_DIR}/install.d/plain-install/20-plain", "x\n", mode=0o755)
        self.root.write(f"{HOOKS_DIR}/install.d/odd.name-source-install/30-odd", "x\n",
                        mode=0o755)
        self.run_hook(*HOOK, env=dict(self.env, DIB_INSTALLTYPE_plain="plain"))
        self.assertHookSucceeded()
        self.assertFileAbsent(f"{HOOKS_DIR}/install.d/20-plain")
        self.assertFileAbsent(f"{HOOKS_DIR}/install.d/30-odd")

    def test_no_install_d_is_fine(self):
        self.run_hook(*HOOK, env={"TMP_HOOKS_PATH": str(self.root.join("/srv/empty"))})
        self.assertHookSucceeded()
