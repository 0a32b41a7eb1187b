"""Unit tests for the package-installs element's phase hooks (dib.testing).

Each hook hands the merged package-installs.json and its own directory (for
plain package-installs-<element> lists) to package-installs-v2 for its phase,
and does nothing when there is neither; the helper itself is tested in
tests/unit.
"""
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = "/tmp/in_target.d/package-installs.json"
HOOKS = {
    "pre_install_10": ("pre-install", "10-package-installs", []),
    "pre_install_99": ("pre-install", "99-package-uninstalls", ["--uninstall"]),
    "install_01": ("install", "01-package-installs", []),
    "install_99": ("install", "99-package-uninstalls", ["--uninstall"]),
    "post_install_00": ("post-install", "00-package-installs", []),
    "post_install_95": ("post-install", "95-package-uninstalls", ["--uninstall"]),
}


def helper_args(phase, flags):
    """What a hook passes to package-installs-v2: its phase, the flags, and
    its own directory, where plain package-installs-<element> lists sit."""
    return ["--phase", f"{phase}.d", *flags, "--legacy-dir", f"/tmp/in_target.d/{phase}.d"]


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

    def check_calls_helper(self, phase, hook, flags):
        self.run_hook(self.element_with_packages(), phase, hook)
        self.assertHookSucceeded()
        self.assertCalled("package-installs-v2", *helper_args(phase, flags), DEFAULT_FILE,
                          exact=True, times=1)
        self.assertNotCalled("install-packages")

    def check_file_from_environment(self, phase, hook, flags):
        self.root.write("/var/tmp/pkgs.json", PACKAGES_JSON)
        self.run_hook(phase, hook, env={"DIB_PACKAGE_INSTALLS_FILE": "/var/tmp/pkgs.json"})
        self.assertHookSucceeded()
        self.assertCalled("package-installs-v2", *helper_args(phase, flags),
                          "/var/tmp/pkgs.json", exact=True)

    def check_plain_list_alone_calls_helper(self, phase, hook, flags):
        # No combined file, but an element's plain list in the phase directory.
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "package-installs"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        (copy / f"{phase}.d" / "package-installs-other").write_text("curl\n")
        self.run_hook(copy, phase, hook)
        self.assertHookSucceeded()
        self.assertCalled("package-installs-v2", *helper_args(phase, flags), DEFAULT_FILE,
                          exact=True, times=1)

    def check_quiet_without_json(self, phase, hook, flags):
        result = self.run_hook(phase, hook)
        self.assertHookSucceeded(result)
        self.assertNotCalled("package-installs-v2")
        # Quiet: nothing is printed after the hook starts.
        self.assertEqual(result.output.rstrip().splitlines()[-1],
                         f"dib-run-parts Running /tmp/in_target.d/{phase}.d/{hook}")

    def check_helper_failure_fails(self, phase, hook, flags):
        self.stubs.add("package-installs-v2", exit_code=1, stderr="E: Unable to locate vim\n")
        self.run_hook(self.element_with_packages(), phase, hook)
        self.assertHookFailed()
        self.assertOutputContains("Unable to locate vim")


def _add_tests():
    checks = ("check_calls_helper", "check_file_from_environment", "check_quiet_without_json",
              "check_helper_failure_fails", "check_plain_list_alone_calls_helper")
    for key, hook_args in HOOKS.items():
        for check in checks:
            def test(self, _check=check, _hook_args=hook_args):
                getattr(self, _check)(*_hook_args)
            name = f"test_{key}_{check[len('check_'):]}"
            test.__name__ = name
            setattr(TestPackageInstallsPhases, name, test)


_add_tests()
