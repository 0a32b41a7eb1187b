"""Unit tests for the ubuntu-common element (dib.testing: no root, no network).

The mirror check reads a fake archive through a file:// URL."""
import subprocess
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
CHECK = "05-ubuntu-check-mirror"
SOURCES = "75-ubuntu-apt-sources"
RELEASE = "Origin: {origin}\nLabel: {origin}\nSuite: {suite}\nCodename: {suite}\n"


def sourced(**env):
    """DIB_APT_SOURCES_CONF and friends after the environment files."""
    files = sorted((ELEMENT / "environment.d").iterdir())
    script = "".join(f"source {f}\n" for f in files) + \
        'printf "%s|%s|%s" "$DIB_APT_SOURCES_CONF" "$DIB_INIT_SYSTEM" "$DIB_RELEASE"'
    out = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.split("|")


def test_sources_name_release_and_dists():
    conf, init, release = sourced(DIB_DISTRIBUTION_MIRROR="http://mirror.example.com/ubuntu")
    assert release == "noble" and init == "systemd"
    assert conf.splitlines() == [
        "default:deb http://mirror.example.com/ubuntu noble main universe",
        "updates:deb http://mirror.example.com/ubuntu noble-updates main universe",
        "security:deb http://mirror.example.com/ubuntu noble-security main universe",
        "backports:deb http://mirror.example.com/ubuntu noble-backports main universe"]


def test_dists_and_components_from_the_environment():
    conf, _, _ = sourced(DIB_DISTRIBUTION_MIRROR="http://mirror.example.com/ubuntu", DIB_RELEASE="jammy",
                         DIB_UBUNTU_MIRROR_DISTS="security", DIB_DEBIAN_COMPONENTS="main")
    assert conf.splitlines() == ["default:deb http://mirror.example.com/ubuntu jammy main",
                                 "security:deb http://mirror.example.com/ubuntu jammy-security main"]


def test_trusty_is_upstart():
    assert sourced(DIB_RELEASE="trusty")[1] == "upstart"


class TestCheckMirror(HookTestCase):
    """root.d/05-ubuntu-check-mirror."""

    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        self.keyring = self.root.write("/srv/keys/ubuntu.gpg", "key\n")
        self.mirror = self.root.join("/srv/mirror")

    def archive(self, origin="Ubuntu", suite="noble"):
        self.root.write(f"/srv/mirror/dists/{suite}/Release",
                        RELEASE.format(origin=origin, suite=suite))

    def check(self, **env):
        full = {"DIB_DISTRIBUTION_MIRROR": f"file://{self.mirror}", "DIB_RELEASE": "noble",
                "DIB_APT_KEYRING": str(self.keyring), "DIB_OFFLINE": "", **env}
        return self.run_hook("root", CHECK, env=full)

    def test_ubuntu_archive_passes(self):
        self.archive()
        self.check()
        self.assertHookSucceeded()

    def test_debian_mirror_is_an_error(self):
        self.archive(origin="Debian")
        self.check()
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("ubuntu-common (root.d/05-ubuntu-check-mirror): "
                                  f"DIB_DISTRIBUTION_MIRROR=file://{self.mirror} holds a "
                                  "'noble' release of 'Debian', not Ubuntu")

    def test_missing_release_is_an_error(self):
        self.archive(suite="jammy")
        self.check()
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains(f"DIB_DISTRIBUTION_MIRROR=file://{self.mirror} does not answer "
                                  "for release 'noble'")

    def test_empty_mirror_is_an_error(self):
        self.check(DIB_DISTRIBUTION_MIRROR="")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_DISTRIBUTION_MIRROR is empty")

    def test_offline_skips_the_mirror(self):
        self.check(DIB_OFFLINE="1")
        self.assertHookSucceeded()

    def test_no_keyring_is_an_error(self):
        self.archive()
        self.check(DIB_APT_KEYRING="")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("no Ubuntu archive key")

    def test_missing_keyring_file_is_an_error(self):
        self.archive()
        self.check(DIB_APT_KEYRING="/srv/keys/nope.gpg")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_APT_KEYRING=/srv/keys/nope.gpg does not exist")

    def test_unknown_kernel_is_an_error(self):
        self.archive()
        self.check(DIB_UBUNTU_KERNEL="linux-image-lowlatency")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_UBUNTU_KERNEL=linux-image-lowlatency is not one of "
                                  "linux-image-generic")

    def test_every_problem_is_reported_at_once(self):
        self.check(DIB_APT_KEYRING="", DIB_DISTRIBUTION_MIRROR="")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("no Ubuntu archive key")
        self.assertOutputContains("DIB_DISTRIBUTION_MIRROR is empty")


class TestAptSources(HookTestCase):
    """root.d/75-ubuntu-apt-sources."""

    element = ELEMENT
    stub_commands = ("chroot",)

    def sources(self, **env):
        full = {"DIB_DISTRIBUTION_MIRROR": "http://mirror.example.com/ubuntu",
                "DIB_RELEASE": "noble", "DIB_APT_KEYRING": "", **env}
        return self.run_hook("root", SOURCES, env=full)

    def test_noble_deb822_signed_by_the_images_keyring(self):
        self.root.write("/usr/share/keyrings/ubuntu-archive-keyring.gpg", "key\n")
        self.sources()
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/apt/sources.list.d/ubuntu.sources"),
                         "Types: deb\nURIs: http://mirror.example.com/ubuntu\n"
                         "Suites: noble noble-updates noble-security noble-backports\n"
                         "Components: main universe\n"
                         "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n")
        self.assertFileAbsent("/etc/apt/sources.list")
        self.assertCalled("chroot", str(self.root.path), "apt-get", "-y", "update", exact=True)

    def test_jammy_one_line_sources(self):
        self.sources(DIB_RELEASE="jammy", DIB_UBUNTU_MIRROR_DISTS="updates")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/apt/sources.list"),
                         "deb http://mirror.example.com/ubuntu jammy main universe\n"
                         "deb http://mirror.example.com/ubuntu jammy-updates main universe\n")
        self.assertFileAbsent("/etc/apt/sources.list.d/ubuntu.sources")

    def test_host_keyring_copied_when_the_image_has_none(self):
        keyring = self.root.write("/srv/keys/ubuntu.gpg", "host key\n")
        self.sources(DIB_APT_KEYRING=str(keyring))
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/apt/trusted.gpg.d/dib-apt-keyring.gpg"), "host key\n")
        self.assertNotIn("Signed-By", self.root.read("/etc/apt/sources.list.d/ubuntu.sources"))

    def test_insecure_mirror_settings(self):
        self.sources(DIB_DISTRIBUTION_MIRROR="https://mirror.example.com/ubuntu",
                     DIB_DISTRIBUTION_MIRROR_UBUNTU_INSECURE="1",
                     DIB_DISTRIBUTION_MIRROR_VERIFY_HTTPS="0")
        self.assertHookSucceeded()
        text = self.root.read("/etc/apt/apt.conf.d/95allow-unauthenticated")
        self.assertIn('APT::Get::AllowUnauthenticated "true";\n', text)
        self.assertIn('Acquire::https::Verify-Peer "false";\n', text)

    def test_secure_by_default(self):
        self.sources()
        self.assertFileAbsent("/etc/apt/apt.conf.d/95allow-unauthenticated")

    def test_indexes_kept_no_update(self):
        self.root.write("/var/lib/apt/lists/mirror_dists_noble_main_binary-amd64_Packages", "")
        self.sources()
        self.assertHookSucceeded()
        self.assertNotCalled("chroot")


class TestImageHooks(HookTestCase):
    """install.d/80-disable-rfc3041 and post-install.d/99-autoremove."""

    element = ELEMENT
    stub_commands = ("apt-get",)

    def test_no_temporary_ipv6_addresses(self):
        self.run_hook("install", "80-disable-rfc3041", env={"DISTRO_NAME": "ubuntu"})
        self.assertHookSucceeded()
        text = self.root.read("/etc/sysctl.d/99-cloudimg-ipv6.conf")
        self.assertIn("net.ipv6.conf.all.use_tempaddr=0\n", text)
        self.assertIn("net.ipv6.conf.default.use_tempaddr=0\n", text)

    def test_autoremove(self):
        self.run_hook("post-install", "99-autoremove", env={"DISTRO_NAME": "ubuntu"})
        self.assertHookSucceeded()
        self.assertCalled("apt-get", "-y", "autoremove", exact=True)
