"""Unit tests for the epel element's hook (dib.testing: no root, no network)."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
HOOK = ("pre-install", "05-rpm-epel-release")
REPO = "/etc/yum.repos.d/epel.repo"
# What installing epel-release leaves behind (trimmed).
EPEL_REPO = """[epel]
name=Extra Packages for Enterprise Linux $releasever - $basearch
#baseurl=https://download.example.org/pub/epel/$releasever/Everything/$basearch/
metalink=https://mirrors.example.org/metalink?repo=epel-$releasever&arch=$basearch
enabled=1
"""
# dnf/yum stand-in: "install ... epel-release*" writes the repository file.
FAKE_DNF = ('case "$*" in *epel-release*) mkdir -p /etc/yum.repos.d; '
            "cat > /etc/yum.repos.d/epel.repo <<'REPO'\n" + EPEL_REPO + "REPO\n;; esac")
CENTOS = {"DISTRO_NAME": "centos", "DIB_RELEASE": "9-stream", "YUM": "dnf"}


class TestEpel(HookTestCase):

    element = ELEMENT
    stub_commands = {"dnf": {"script": FAKE_DNF}, "yum": {"script": FAKE_DNF},
                     "rpm": None, "yum-config-manager": None}

    def test_debian_is_left_alone(self):
        before = self.root.snapshot()
        self.run_hook(*HOOK)
        self.assertHookSucceeded()
        self.assertEqual(self.stubs.calls(), [])
        self.assertEqual(self.root.snapshot(), before)
        self.assertOutputContains("nothing to do")

    def test_centos_installs_epel_release(self):
        self.run_hook(*HOOK, env=CENTOS)
        self.assertHookSucceeded()
        self.assertCalled("dnf", "install", "-y", "epel-release", exact=True, times=1)
        self.assertEqual(self.root.read(REPO), EPEL_REPO)

    def test_yum_when_the_image_has_no_dnf(self):
        env = dict(CENTOS, YUM="yum", DISTRO_NAME="rocky", DIB_RELEASE="8")
        self.run_hook(*HOOK, env=env)
        self.assertHookSucceeded()
        self.assertCalled("yum", "install", "-y", "epel-release", exact=True)
        self.assertNotCalled("dnf")

    def test_mirror_replaces_the_mirror_lists(self):
        self.run_hook(*HOOK, env=dict(CENTOS, DIB_EPEL_MIRROR="http://epel.example.org/pub/epel/"))
        self.assertHookSucceeded()
        repo = self.root.read(REPO)
        self.assertIn("\nbaseurl=http://epel.example.org/pub/epel/"
                      "$releasever/Everything/$basearch/\n", repo)
        self.assertNotIn("metalink", repo)
        self.assertIn("enabled=1", repo)

    def test_disabled_repository(self):
        self.run_hook(*HOOK, env=dict(CENTOS, DIB_EPEL_DISABLED="1"))
        self.assertHookSucceeded()
        self.assertCalled("rpm", "-q", "dnf-plugins-core", exact=True)
        self.assertCalled("dnf", "config-manager", "--set-disabled", "epel*", exact=True)

    def test_disabled_with_yum_fetches_yum_utils_first(self):
        self.stubs.add("rpm", exit_code=1)
        env = dict(CENTOS, YUM="yum", DIB_EPEL_DISABLED="1")
        self.run_hook(*HOOK, env=env)
        self.assertHookSucceeded()
        self.assertCalled("yum", "install", "-y", "yum-utils", exact=True)
        self.assertCalled("yum-config-manager", "--disable", "epel*", exact=True)

    def test_rhel_installs_from_the_mirror(self):
        env = {"DISTRO_NAME": "rhel", "DIB_RELEASE": "9", "YUM": "dnf",
               "DIB_EPEL_MIRROR": "https://epel.example.org/pub/epel"}
        self.run_hook(*HOOK, env=env)
        self.assertHookSucceeded()
        self.assertCalled("dnf", "install", "-y",
                          "https://epel.example.org/pub/epel/epel-release-latest-9.noarch.rpm",
                          exact=True)

    def test_rhel_without_mirror_is_explained(self):
        self.run_hook(*HOOK, env={"DISTRO_NAME": "rhel", "DIB_RELEASE": "9", "YUM": "dnf"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("set DIB_EPEL_MIRROR")
        self.assertNotCalled("dnf")

    def test_bad_disabled_value(self):
        self.run_hook(*HOOK, env=dict(CENTOS, DIB_EPEL_DISABLED="yes"))
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_EPEL_DISABLED='yes'")
        self.assertNotCalled("dnf")

    def test_install_failure_fails_the_hook(self):
        self.stubs.add("dnf", exit_code=1, stderr="No match for argument: epel-release\n")
        self.run_hook(*HOOK, env=CENTOS)
        self.assertHookFailed()
