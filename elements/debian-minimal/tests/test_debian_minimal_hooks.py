"""Unit tests for debian-minimal's hook (dib.testing: no root, no network).

tests/unit/test_hooks_elements.py checks the deb822 stanzas and .list files
made from DIB_APT_SOURCES_CONF; these cover keys and the index update.
"""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
HOOK = ("root", "75-debian-minimal-baseinstall")
SOURCES = "/etc/apt/sources.list.d/debian.sources"
ARCHIVE_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class TestDebianMinimalSources(HookTestCase):
    element = ELEMENT
    stub_commands = ("chroot",)
    hook_env = {"DIB_DISTRIBUTION_MIRROR": "http://deb.example.invalid/debian",
                "DIB_DEBIAN_SECURITY_MIRROR": "http://sec.example.invalid/debian-security"}

    def with_lists(self):
        self.root.write("/var/lib/apt/lists/deb.example.invalid_dists_bookworm_main_"
                        "binary-amd64_Packages", "")

    def test_indexes_fetched_in_the_target_when_missing(self):
        self.run_hook(*HOOK)
        self.assertHookSucceeded()
        self.assertCalled("chroot", str(self.root.path), "apt-get", "-y", "update", exact=True)

    def test_no_update_when_indexes_exist(self):
        self.with_lists()
        self.root.write("/etc/apt/sources.list", "deb http://old.example.invalid/ sid main\n")
        self.run_hook(*HOOK)
        self.assertHookSucceeded()
        self.assertNotCalled("chroot")
        self.assertFileAbsent("/etc/apt/sources.list")
        self.assertFileMode(SOURCES, "0644")

    def test_signed_by_the_archive_keyring_in_the_target(self):
        self.with_lists()
        self.root.write(ARCHIVE_KEYRING, b"\x99key")
        self.run_hook(*HOOK)
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(SOURCES).count(f"Signed-By: {ARCHIVE_KEYRING}\n"), 3)

    def test_given_keyring_is_installed(self):
        self.with_lists()
        # The keyring is a host file; under the fake root so the sandbox sees it.
        for name, installed in (("/srv/k.asc", "dib-apt-keyring.asc"),
                                ("/srv/k.gpg", "dib-apt-keyring.gpg")):
            self.root.write(name, f"key {name}\n")
            self.run_hook(*HOOK, env={"DIB_APT_KEYRING": str(self.root.join(name))})
            self.assertHookSucceeded()
            self.assertEqual(self.root.read(f"/etc/apt/trusted.gpg.d/{installed}"),
                             f"key {name}\n")
        self.assertNotIn("Signed-By", self.root.read(SOURCES))

    def test_deb_src_and_unnamed_lines(self):
        self.with_lists()
        conf = ("src:deb-src http://deb.example.invalid/debian bookworm main\n"
                "deb http://nameless.example.invalid/ bookworm main\n")
        self.run_hook(*HOOK, env={"DIB_APT_SOURCES_CONF": conf})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(SOURCES),
                         "# src\nTypes: deb-src\nURIs: http://deb.example.invalid/debian\n"
                         "Suites: bookworm\nComponents: main\n")
        self.assertOutputContains("Skipping apt source without a name")

    def test_no_sources_no_file(self):
        self.with_lists()
        self.run_hook(*HOOK, env={"DIB_APT_SOURCES_CONF": "   \n"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir("/etc/apt/sources.list.d"), [])

    def test_update_failure_fails_the_hook(self):
        self.stubs.add("chroot", exit_code=100)
        self.run_hook(*HOOK)
        self.assertHookFailed()
