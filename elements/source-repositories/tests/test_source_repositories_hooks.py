"""Unit tests for the source-repositories element's hook (dib.testing: no root, no network).

The "upstream" git repository is a local one, under the fake root so that
the sandboxed hook can see it.
"""
import shutil
import subprocess
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
HOOK = "98-source-repositories"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}


class TestSourceRepositories(HookTestCase):
    """extra-data.d/98-source-repositories."""

    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        self.cache = self.root.mkdir("/var/cache/dib-test-cache")
        self.hook_env = {"DIB_IMAGE_CACHE": str(self.cache), "DIB_DEFAULT_INSTALLTYPE": "source"}

    def upstream(self):
        repo = self.root.mkdir("/srv/upstream")
        git = ["git", "-C", str(repo)]
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=GIT_ENV)
        (repo / "README").write_text("upstream readme\n")
        subprocess.run(git + ["add", "README"], check=True, env=GIT_ENV)
        subprocess.run(git + ["commit", "-q", "-m", "first"], check=True, env=GIT_ENV)
        sha = subprocess.run(git + ["rev-parse", "HEAD"], check=True, env=GIT_ENV,
                             capture_output=True, text=True).stdout.strip()
        return repo, sha

    def element_with(self, repo_lines):
        """The element as a build merges it: a source-repository-* file."""
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "source-repositories"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        (copy / "source-repository-dibtest").write_text(repo_lines)
        return copy

    def test_git_checkout_manifest_and_record(self):
        repo, sha = self.upstream()
        element = self.element_with(f"# a comment\n\ndibtest git /opt/dibtest {repo} main\n")
        self.run_hook(element, "extra-data", HOOK)
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/opt/dibtest/README"), "upstream readme\n")
        self.assertEqual(self.root.read("/etc/dib-source-repositories"), "/opt/dibtest\n")
        self.assertEqual(self.root.read("/etc/dib-manifests/dib-manifest-git-image"),
                         f"dibtest git /opt/dibtest {repo} {sha}\n")

    def test_ref_override_and_variables(self):
        repo, sha = self.upstream()
        element = self.element_with("dibtest git /opt/$DIB_TEST_DEST $DIB_TEST_REPO nosuch\n")
        self.run_hook(element, "extra-data", HOOK,
                      env={"DIB_TEST_DEST": "app", "DIB_TEST_REPO": str(repo),
                           "DIB_REPOREF_dibtest": sha})
        self.assertHookSucceeded()
        self.assertFileExists("/opt/app/README")

    def test_missing_ref_fails(self):
        repo, _sha = self.upstream()
        element = self.element_with(f"dibtest git /opt/dibtest {repo} no-such-branch\n")
        self.run_hook(element, "extra-data", HOOK)
        self.assertHookFailed()
        self.assertOutputContains("Cannot find ref no-such-branch")
        self.assertFileAbsent("/opt/dibtest")

    def test_package_install_type_fetches_nothing(self):
        element = self.element_with("dibtest git /opt/dibtest /srv/none main\n")
        self.run_hook(element, "extra-data", HOOK, env={"DIB_INSTALLTYPE_dibtest": "package"})
        self.assertHookSucceeded()
        self.assertOutputContains("nothing to fetch")
        self.assertFileAbsent("/opt/dibtest")
        self.assertFileAbsent("/etc/dib-source-repositories")

    def test_unparsable_line_fails(self):
        element = self.element_with("dibtest svn /opt/dibtest /srv/none\n")
        self.run_hook(element, "extra-data", HOOK)
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("Cannot parse 'dibtest svn /opt/dibtest /srv/none'")

    def test_two_repositories_one_destination_fails(self):
        repo, _sha = self.upstream()
        element = self.element_with(f"one git /opt/same {repo} main\n"
                                    f"two git /opt/same {repo} main\n")
        self.run_hook(element, "extra-data", HOOK)
        self.assertHookFailed()
        self.assertOutputContains("Two source repositories use the destination /opt/same")

    def test_switched_off(self):
        element = self.element_with("dibtest svn broken\n")
        self.run_hook(element, "extra-data", HOOK, env={"NO_SOURCE_REPOSITORIES": "1"})
        self.assertHookSucceeded()
        self.assertFileAbsent("/etc/dib-source-repositories")
