"""Unit tests for the install-static element's hook (dib.testing: no root, no network)."""
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]


class TestInstallStatic(HookTestCase):
    """install.d/10-install-static-files."""

    element = ELEMENT
    stub_commands = ()

    def element_with_static(self, files):
        """The element as a build merges it: other elements' static/ beside the hooks."""
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "install-static"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        for name, (text, mode) in files.items():
            path = copy / "static" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(mode)
        return copy

    def test_files_copied_with_their_modes(self):
        element = self.element_with_static({
            "etc/dib-test.conf": ("key = value\n", 0o640),
            "etc/cron.daily/dib-test": ("#!/bin/sh\n", 0o755),
            "srv/www/index.html": ("<p>hi</p>\n", 0o644)})
        self.run_hook(element, "install", "10-install-static-files")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/dib-test.conf"), "key = value\n")
        self.assertFileMode("/etc/dib-test.conf", "0640")
        self.assertFileMode("/etc/cron.daily/dib-test", "0755")
        self.assertEqual(self.root.read("/srv/www/index.html"), "<p>hi</p>\n")

    def test_existing_files_and_dir_modes_kept(self):
        self.root.write("/etc/hostname", "keep\n")
        self.root.join("/etc").chmod(0o755)
        element = self.element_with_static({"etc/new.conf": ("x\n", 0o644)})
        (element / "static/etc").chmod(0o700)
        self.run_hook(element, "install", "10-install-static-files")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/hostname"), "keep\n")
        self.assertFileMode("/etc", "0755")
        self.assertFileExists("/etc/new.conf")

    def test_vcs_and_backup_files_skipped(self):
        element = self.element_with_static({
            "etc/app.conf": ("a\n", 0o644), "etc/app.conf~": ("old\n", 0o644),
            "etc/.git/config": ("[core]\n", 0o644), "etc/.gitignore": ("*\n", 0o644)})
        self.run_hook(element, "install", "10-install-static-files")
        self.assertHookSucceeded()
        self.assertFileExists("/etc/app.conf")
        self.assertFileAbsent("/etc/app.conf~")
        self.assertFileAbsent("/etc/.git")
        self.assertFileAbsent("/etc/.gitignore")

    def test_no_static_dir_changes_nothing(self):
        before = self.root.snapshot()
        self.run_hook("install", "10-install-static-files")
        self.assertHookSucceeded()
        self.assertEqual(self.root.snapshot(), before)
