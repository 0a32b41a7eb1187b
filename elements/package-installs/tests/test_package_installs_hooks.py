"""Unit tests for the package-installs element's phase hooks (dib.testing).

Each hook hands the merged package-installs.json to package-installs-v2 for
its phase and does nothing without it; the helper itself is tested in
tests/unit.
"""
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = "/tmp/in_target.d/package-installs.json"
HOOKS = {
    "pre_install_10": ("pre-install", "10-package-installs", ["--phase", "pre-install.d"]),
    "pre_install_99": ("pre-install", "99-package-uninstalls",
                       ["--phase", "pre-install.d", "--uninstall"]),
    "install_01": ("install", "01-package-installs", ["--phase", "install.d"]),
    "install_99": ("install", "99-package-uninstalls", ["--phase", "install.d", "--uninstall"]),
    "post_install_00": ("post-install", "00-package-installs", ["--phase", "post-install.d"]),
    "post_install_95": ("post-install", "95-package-uninstalls",
                        ["--phase", "post-install.d", "--uninstall"]),
}
PACKAGES_JSON = '{"install.d": {"install": [["vim", "base"]]}}\n'


class TestPackageInstallsPhases(HookTestCase):
    element = ELEMENT
    stub_commands = ("package-installs-v2", "install-packages")

    def element_with_packages(self):
        """The element as a build merges it: package-installs.json beside the hooks."""
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "package-installs"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        (copy / "package-installs.json").write_text(PACKAGES_JSON)
        return copy

    def check_calls_helper(self, phase, hook, args):
        self.run_hook(self.element_with_packages(), phase, hook)
        self.assertHookSucceeded()
        self.assertCalled("package-installs-v2", *args, DEFAULT_FILE, exact=True, times=1)
        self.assertNotCalled("install-packages")

    def check_file_from_environment(self, phase, hook, args):
        self.root.write("/var/tmp/pkgs.json", PACKAGES_JSON)
        self.run_hook(phase, hook, env={"DIB_PACKAGE_INSTALLS_FILE": "/var/tmp/pkgs.json"})
        self.assertHookSucceeded()
        self.assertCalled("package-installs-v2", *args, "/var/tmp/pkgs.json", exact=True)

    def check_quiet_without_json(self, phase, hook, args):
        result = self.run_hook(phase, hook)
        self.assertHookSucceeded(result)
        self.assertNotCalled("package-installs-v2")
        # Quiet: nothing is printed after the hook starts.
        self.assertEqual(result.output.rstrip().splitlines()[-1],
                         f"dib-run-parts Running /tmp/in_target.d/{phase}.d/{hook}")

    def check_helper_failure_fails(self, phase, hook, args):
        self.stubs.add("package-installs-v2", exit_code=1, stderr="E: Unable to locate vim\n")
        self.run_hook(self.element_with_packages(), phase, hook)
        self.assertHookFailed()
        self.assertOutputContains("Unable to locate vim")


def _add_tests():
    checks = ("check_calls_helper", "check_file_from_environment", "check_quiet_without_json",
              "check_helper_failure_fails")
    for key, hook_args in HOOKS.items():
        for check in checks:
            def test(self, _check=check, _hook_args=hook_args):
                getattr(self, _check)(*_hook_args)
            name = f"test_{key}_{check[len('check_'):]}"
            test.__name__ = name
            setattr(TestPackageInstallsPhases, name, test)


_add_tests()
