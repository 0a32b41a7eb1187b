"""Unit tests for motd-banner's hook: no root, no network, ~0.1 s each.

Run with:  python -m pytest docs/examples/motd-banner/tests
      or:  python -m testtools.run discover -s docs/examples/motd-banner/tests -t docs/examples/motd-banner/tests
"""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


class TestMotdBanner(HookTestCase):
    element = ELEMENT
    stub_commands = {"figlet": {"stdout": "BIG LETTERS\n"}, "install-packages": None}

    def test_default_banner(self):
        self.run_hook("install", "50-motd-banner")
        self.assertHookSucceeded()
        self.assertFileContains("/etc/motd", "Built with dib")
        self.assertFileContains("/etc/issue", "Built with dib")
        self.assertFileMode("/etc/motd", "0644")
        self.assertNotCalled("figlet")

    def test_text_from_the_environment(self):
        self.run_hook("install", "50-motd-banner",
                      env={"DIB_MOTD_BANNER_TEXT": "Hello, CI"})
        self.assertHookSucceeded()
        self.assertFileContains("/etc/motd", regex=r"^Hello, CI$")

    def test_figlet(self):
        self.run_hook("install", "50-motd-banner", env={"DIB_MOTD_BANNER_FIGLET": "1"})
        self.assertHookSucceeded()
        self.assertCalled("figlet", "-w", "78", "Built with dib", exact=True)
        self.assertFileContains("/etc/motd", "BIG LETTERS")
        # Packages come from package-installs.yaml, never from the hook itself.
        self.assertNotCalled("install-packages")

    def test_uname_banner_is_switched_off(self):
        self.root.write("/etc/update-motd.d/10-uname", "#!/bin/sh\nuname -a\n", mode=0o755)
        self.run_hook("install", "50-motd-banner")
        self.assertHookSucceeded()
        self.assertFileMode("/etc/update-motd.d/10-uname", 0o644)

    def test_figlet_failure_fails_the_hook(self):
        self.stubs.add("figlet", exit_code=1, stderr="figlet: font not found\n")
        result = self.run_hook("install", "50-motd-banner",
                               env={"DIB_MOTD_BANNER_FIGLET": "1"})
        self.assertHookFailed(result)
        self.assertOutputContains("font not found")
