"""Unit tests for the debootstrap element's hooks (dib.testing: no root, no network).

mmdebstrap and debootstrap are stubs: the tests check the command line the
bootstrap is run with, not a real bootstrap.
"""
import os
import shutil
import tarfile
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
MIRROR = "http://deb.example.invalid/debian"
HOOKS_DIR = "/usr/share/mmdebstrap/hooks"
ROOT_ENV = {"DIB_DISTRIBUTION_MIRROR": MIRROR, "ARCH": "amd64", "DIB_RELEASE": "bookworm",
            "DISTRO_NAME": "debian"}


class TestBootstrap(HookTestCase):
    """root.d/08-debootstrap."""

    element = ELEMENT
    stub_commands = ("mmdebstrap", "debootstrap")
    hook_env = ROOT_ENV

    def bootstrap(self, **env):
        return self.run_hook("root", "08-debootstrap", env=env)

    def expected_hook_dirs(self, eatmydata=True):
        out = []
        if os.path.isdir(f"{HOOKS_DIR}/merged-usr"):
            out.append(f"--hook-dir={HOOKS_DIR}/merged-usr")
        if eatmydata and os.path.isdir(f"{HOOKS_DIR}/eatmydata"):
            out.append(f"--hook-dir={HOOKS_DIR}/eatmydata")
        return out

    def test_mmdebstrap_command_line(self):
        self.bootstrap(DIB_DEBOOTSTRAP_INCLUDE=" sudo, apt python3 apt,,zstd ")
        self.assertHookSucceeded()
        self.assertNotCalled("debootstrap")
        # The fake root is not empty, so the emptiness check is skipped; the
        # merged-/usr (and eatmydata) hook directories are used when the host
        # has them.
        self.assertCalled("mmdebstrap", "--variant=minbase", "--arch=amd64",
                          "--components=main", "--include=apt,python3,sudo,zstd",
                          "--skip=cleanup/apt/lists", "--skip=check/empty",
                          *self.expected_hook_dirs(), "bookworm", str(self.root.path), MIRROR,
                          exact=True)

    def test_every_deb_line_of_the_apt_sources_is_used(self):
        conf = (f"default:deb {MIRROR} trixie main contrib\n"
                f"updates:deb {MIRROR} trixie-updates main contrib\n"
                "\n"
                "src:deb-src http://src.example.invalid/debian trixie main\n"
                "security:deb http://sec.example.invalid/debian-security trixie-security main\n")
        self.bootstrap(DIB_RELEASE="trixie", DIB_APT_SOURCES_CONF=conf,
                       DIB_DEBIAN_COMPONENTS="main,contrib", ARCH="arm64")
        self.assertHookSucceeded()
        call = self.assertCalled("mmdebstrap", "--arch=arm64", "--components=main,contrib")
        self.assertEqual(call.args[-4:], [
            str(self.root.path), f"deb {MIRROR} trixie main contrib",
            f"deb {MIRROR} trixie-updates main contrib",
            "deb http://sec.example.invalid/debian-security trixie-security main"])
        self.assertEqual(call.args[-5], "trixie")

    def test_keyring_extra_args_eatmydata_off_and_trace(self):
        self.bootstrap(DIB_APT_KEYRING="/etc/apt/keyring.gpg",
                       DIB_DEBOOTSTRAP_EXTRA_ARGS="--aptopt=Acquire::Retries=3 --dpkgopt=x",
                       DIB_DEBOOTSTRAP_EATMYDATA="0", DIB_DEBUG_TRACE="1")
        self.assertHookSucceeded()
        call = self.assertCalled("mmdebstrap", "--keyring=/etc/apt/keyring.gpg")
        self.assertIn("--verbose", call.args)
        self.assertNotIn(f"--hook-dir={HOOKS_DIR}/eatmydata", call.args)
        self.assertCalled("mmdebstrap", "--aptopt=Acquire::Retries=3", "--dpkgopt=x",
                          "bookworm")

    def test_proxy_is_passed_to_the_bootstrap(self):
        self.bootstrap(http_proxy="http://proxy.example.invalid:3128")
        self.assertHookSucceeded()
        call = self.assertCalled("mmdebstrap")
        self.assertEqual(call.env["http_proxy"], "http://proxy.example.invalid:3128")

    def test_apt_sources_are_left_to_the_os_element(self):
        self.root.write("/etc/apt/sources.list", f"deb {MIRROR} bookworm main\n")
        self.root.write("/etc/apt/sources.list.d/old.list", f"deb {MIRROR} sid main\n")
        self.root.write("/.extra_settings", "DIB_DEBIAN_COMPONENTS=main,non-free\n")
        self.bootstrap()
        self.assertHookSucceeded()
        self.assertFileAbsent("/etc/apt/sources.list")
        self.assertEqual(self.root.listdir("/etc/apt/sources.list.d"), [])
        self.assertFileAbsent("/.extra_settings")
        # .extra_settings was read before the bootstrap.
        self.assertCalled("mmdebstrap", "--components=main,non-free")

    def test_debootstrap_script_selects_debootstrap(self):
        script = "/usr/share/debootstrap/scripts/sid"
        self.bootstrap(DIB_DEBIAN_DEBOOTSTRAP_SCRIPT=script, DIB_DEBOOTSTRAP_INCLUDE="sudo")
        self.assertHookSucceeded()
        self.assertNotCalled("mmdebstrap")
        self.assertCalled("debootstrap", "--variant=minbase", "--arch=amd64",
                          "--components=main", "--include=sudo", "--verbose", "bookworm",
                          str(self.root.path), MIRROR, script, exact=True)

    def test_debootstrap_when_mmdebstrap_is_absent(self):
        # PATH: the stubs first, then every host command except mmdebstrap.
        self.stubs.reset()
        path_dir = self.stubs.bin_dir
        for directory in ("/usr/bin", "/bin"):
            for name in os.listdir(directory):
                if name != "mmdebstrap" and not os.path.lexists(path_dir / name):
                    os.symlink(os.path.join(directory, name), path_dir / name)
        stubbed = set(self.stubs.names)
        self.stubs.specs.pop("mmdebstrap")
        (path_dir / "mmdebstrap").unlink()
        self.assertIn("debootstrap", stubbed)
        self.bootstrap(PATH=f"{path_dir}:/usr/sbin:/sbin", DIB_DEBOOTSTRAP_INCLUDE="sudo,apt")
        self.assertHookSucceeded()
        self.assertOutputContains("with debootstrap")
        self.assertCalled("debootstrap", "--variant=minbase", "--arch=amd64",
                          "--components=main", "--include=apt,sudo", "--verbose", "bookworm",
                          str(self.root.path), MIRROR, exact=True)

    def test_missing_mirror_is_an_error(self):
        result = self.bootstrap(DIB_DISTRIBUTION_MIRROR="")
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("DIB_DISTRIBUTION_MIRROR is not set")
        self.assertNotCalled("mmdebstrap")
        self.assertNotCalled("debootstrap")

    def test_missing_distro_is_an_error(self):
        self.bootstrap(DISTRO_NAME="")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DISTRO_NAME is not set")

    def test_bootstrap_failure_fails_the_hook(self):
        self.root.write("/etc/apt/sources.list", "keep\n")
        self.stubs.add("mmdebstrap", exit_code=1, stderr="E: cannot resolve\n")
        self.bootstrap()
        self.assertHookFailed()
        self.assertFileExists("/etc/apt/sources.list")

    def test_offline_build_uses_the_cached_tarball(self):
        cache = self.root.mkdir("/var/cache/dib-test-cache")
        tree = self.root.mkdir("/var/cache/tree")
        (tree / "etc").mkdir()
        (tree / "etc/debian_version").write_text("12.5\n")
        with tarfile.open(cache / "debootstrap-debian-bookworm-amd64.tar.gz", "w:gz") as tar:
            # Owned by root, as a build (uid 0, rootless too) leaves it.
            tar.add(tree, arcname=".", filter=_owned_by_root)
        self.root.write("/.extra_settings", "\n")
        self.bootstrap(DIB_OFFLINE="1", DIB_IMAGE_CACHE=str(cache))
        self.assertHookSucceeded()
        self.assertNotCalled("mmdebstrap")
        self.assertNotCalled("debootstrap")
        self.assertEqual(self.root.read("/etc/debian_version"), "12.5\n")
        self.assertFileAbsent("/.extra_settings")


def _owned_by_root(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    return member


class TestDebianNetworking(HookTestCase):
    """install.d/10-debian-networking."""

    element = ELEMENT
    stub_commands = ()

    def test_hostname_and_dhcp_interfaces(self):
        self.run_hook("install", "10-debian-networking")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/hostname"), "debian\n")
        self.assertEqual(self.root.read("/etc/network/interfaces"),
                         "source /etc/network/interfaces.d/*\n")
        self.assertEqual(self.root.listdir("/etc/network/interfaces.d"), ["eth0", "eth1"])
        self.assertEqual(self.root.read("/etc/network/interfaces.d/eth1"),
                         "auto eth1\niface eth1 inet dhcp\n")

    def test_source_line_is_added_once(self):
        for _ in range(2):
            self.run_hook("install", "10-debian-networking",
                          env={"DIB_NETWORK_INTERFACE_NAMES": "ens3"})
            self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/network/interfaces").count("source "), 1)
        self.assertEqual(self.root.listdir("/etc/network/interfaces.d"), ["ens3"])

    def test_existing_source_directory_line_is_respected(self):
        self.root.write("/etc/network/interfaces",
                        "auto lo\nsource-directory /etc/network/interfaces.d\n")
        self.run_hook("install", "10-debian-networking")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/network/interfaces"),
                         "auto lo\nsource-directory /etc/network/interfaces.d\n")

    def test_interfaces_can_be_switched_off(self):
        self.run_hook("install", "10-debian-networking",
                      env={"DIB_APT_MINIMAL_CREATE_INTERFACES": "0", "DISTRO_NAME": "ubuntu"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/hostname"), "ubuntu\n")
        self.assertFileAbsent("/etc/network/interfaces")
        self.assertFileAbsent("/etc/network/interfaces.d")


class TestLocaleGen(HookTestCase):
    """install.d/12-debian-locale-gen."""

    element = ELEMENT
    stub_commands = ("debconf-set-selections", "dpkg-reconfigure")

    def test_locale_generated_and_default_written(self):
        self.root.write("/etc/locale.gen", "# old\n")
        self.run_hook("install", "12-debian-locale-gen")
        self.assertHookSucceeded()
        call = self.assertCalled("debconf-set-selections")
        self.assertIn("locales locales/locales_to_be_generated multiselect en_US.UTF-8 UTF-8",
                      call.stdin)
        self.assertIn("locales locales/default_environment_locale select en_US.UTF-8",
                      call.stdin)
        reconf = self.assertCalled("dpkg-reconfigure", "-f", "noninteractive", "locales",
                                   exact=True)
        self.assertEqual(reconf.env["DEBIAN_FRONTEND"], "noninteractive")
        self.assertCallOrder("debconf-set-selections", "dpkg-reconfigure")
        self.assertFileAbsent("/etc/locale.gen")
        self.assertEqual(self.root.read("/etc/default/locale"),
                         "LANG=C.UTF-8\nLC_ALL=C.UTF-8\n")

    def test_default_locale_from_the_environment(self):
        self.run_hook("install", "12-debian-locale-gen",
                      env={"DIB_DEBOOTSTRAP_DEFAULT_LOCALE": "en_US.UTF-8"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/default/locale"),
                         "LANG=en_US.UTF-8\nLC_ALL=en_US.UTF-8\n")

    def test_reconfigure_failure_fails_the_hook(self):
        self.stubs.add("dpkg-reconfigure", exit_code=1)
        self.run_hook("install", "12-debian-locale-gen")
        self.assertHookFailed()


class TestSudoersDir(HookTestCase):
    """install.d/15-cleanup-debootstrap."""

    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("install -o root -g root needs root, as in a real build")
        # A real image has these; install looks the owner up in them.
        self.root.write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        self.root.write("/etc/group", "root:x:0:\n")

    def test_sudoers_dir_created_0755(self):
        self.run_hook("install", "15-cleanup-debootstrap")
        self.assertHookSucceeded()
        self.assertFileMode("/etc/sudoers.d", "0755")
        self.assertEqual(self.root.join("/etc/sudoers.d").stat().st_uid, 0)

    def test_wrong_mode_is_fixed(self):
        self.root.mkdir("/etc/sudoers.d", mode=0o700)
        self.root.write("/etc/sudoers.d/README", "keep\n")
        self.run_hook("install", "15-cleanup-debootstrap")
        self.assertHookSucceeded()
        self.assertFileMode("/etc/sudoers.d", "0755")
        self.assertEqual(self.root.read("/etc/sudoers.d/README"), "keep\n")


class TestCleanUpCache(HookTestCase):
    """cleanup.d/99-clean-up-cache."""

    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        lists = "/var/lib/apt/lists"
        self.root.write(f"{lists}/deb.example.invalid_dists_bookworm_InRelease", "x")
        self.root.write(f"{lists}/auxfiles/x", "x")
        self.root.write(f"{lists}/lock", "")
        self.root.mkdir(f"{lists}/partial")

    def test_indexes_removed_lock_and_partial_kept(self):
        self.run_hook("cleanup", "99-clean-up-cache")
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir("/var/lib/apt/lists"), ["lock", "partial"])

    def test_cleanup_can_be_disabled(self):
        self.run_hook("cleanup", "99-clean-up-cache", env={"DIB_DISABLE_APT_CLEANUP": "1"})
        self.assertHookSucceeded()
        self.assertEqual(len(self.root.listdir("/var/lib/apt/lists")), 4)

    def test_no_lists_dir_is_fine(self):
        shutil.rmtree(self.root.join("/var/lib/apt"))
        self.run_hook("cleanup", "99-clean-up-cache")
        self.assertHookSucceeded()
