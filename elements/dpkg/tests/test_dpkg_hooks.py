"""Unit tests for the dpkg element's hooks (dib.testing: no root, no network).

tests/unit/test_hooks_elements.py already checks that 50-block-daemons wraps
start-stop-daemon idempotently and that 40-unblock-daemons restores it; these
tests cover the rest.
"""
import json
import os
import subprocess
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
LISTS = "/var/lib/apt/lists"


class TestAptKeyring(HookTestCase):
    """root.d/09-apt-keyring."""

    element = ELEMENT
    stub_commands = ()

    def test_keys_are_copied_links_followed(self):
        keys = Path(self.useFixture(fixtures.TempDir()).path)
        (keys / "local.gpg").write_bytes(b"\x99\x01key")
        (keys / "sub").mkdir()
        (keys / "sub/other.asc").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
        os.symlink(keys / "local.gpg", keys / "linked.gpg")
        # The keys live on the host, outside the sandbox's view.
        self.run_hook("root", "09-apt-keyring", env={"DIB_ADD_APT_KEYS": str(keys)},
                      sandbox=False)
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir("/etc/apt/trusted.gpg.d"),
                         ["linked.gpg", "local.gpg", "other.asc"])
        linked = self.root.join("/etc/apt/trusted.gpg.d/linked.gpg")
        self.assertFalse(linked.is_symlink())
        self.assertEqual(linked.read_bytes(), b"\x99\x01key")

    def test_nothing_without_keys(self):
        self.run_hook("root", "09-apt-keyring")
        self.assertHookSucceeded()
        self.assertFileAbsent("/etc/apt/trusted.gpg.d")

    def test_missing_key_dir_fails(self):
        self.run_hook("root", "09-apt-keyring",
                      env={"DIB_ADD_APT_KEYS": "/nonexistent/dib-test-keys"})
        self.assertHookFailed()


class TestBlockAptTranslations(HookTestCase):
    """root.d/50-block-apt-translations."""

    element = ELEMENT
    stub_commands = ()

    def test_conf_written_and_translations_dropped(self):
        self.root.write(f"{LISTS}/m_dists_bookworm_main_i18n_Translation-en", "x")
        self.root.write(f"{LISTS}/m_dists_bookworm_main_binary-amd64_Packages", "x")
        self.run_hook("root", "50-block-apt-translations")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/apt/apt.conf.d/95no-translations"),
                         'Acquire::Languages "none";\n')
        self.assertEqual(self.root.listdir(LISTS),
                         ["m_dists_bookworm_main_binary-amd64_Packages"])

    def test_without_lists_dir(self):
        self.run_hook("root", "50-block-apt-translations")
        self.assertHookSucceeded()
        self.assertFileExists("/etc/apt/apt.conf.d/95no-translations")


class TestBlockDaemons(HookTestCase):
    """root.d/50-block-daemons: initctl, /sbin-only releases, policy-rc.d."""

    element = ELEMENT
    stub_commands = ()

    def split_usr(self):
        """A root without merged /usr: /sbin is a directory of its own."""
        self.root.join("/sbin").unlink()
        self.root.mkdir("/sbin")

    def test_policy_rc_d_denies_every_action(self):
        self.run_hook("root", "50-block-daemons")
        self.assertHookSucceeded()
        self.assertFileMode("/usr/sbin/policy-rc.d", "0755")
        proc = subprocess.run([str(self.root.join("/usr/sbin/policy-rc.d")), "ssh", "start"])
        self.assertEqual(proc.returncode, 101)
        # No start-stop-daemon in the tree: nothing is invented.
        self.assertFileAbsent("/usr/sbin/start-stop-daemon")

    def test_sbin_start_stop_daemon_and_initctl(self):
        self.split_usr()
        self.root.write("/sbin/start-stop-daemon", "real ssd\n", mode=0o755)
        self.root.write("/sbin/initctl", "real initctl\n", mode=0o755)
        for _ in range(2):
            self.run_hook("root", "50-block-daemons")
            self.assertHookSucceeded()
        self.assertEqual(self.root.read("/sbin/start-stop-daemon.REAL"), "real ssd\n")
        self.assertEqual(self.root.read("/sbin/initctl.REAL"), "real initctl\n")
        self.assertFileContains("/sbin/initctl", "blocked")
        self.assertFileMode("/sbin/initctl", "0755")
        proc = subprocess.run([str(self.root.join("/sbin/start-stop-daemon")), "--start"],
                              capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0)
        self.assertIn("blocked", proc.stdout)

    def test_block_then_unblock_initctl(self):
        self.split_usr()
        self.root.write("/sbin/initctl", "real initctl\n", mode=0o755)
        self.run_hook("root", "50-block-daemons")
        self.run_hook("cleanup", "40-unblock-daemons")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/sbin/initctl"), "real initctl\n")
        self.assertFileAbsent("/sbin/initctl.REAL")
        self.assertFileAbsent("/usr/sbin/policy-rc.d")


class TestUnblockDaemons(HookTestCase):
    """cleanup.d/40-unblock-daemons on a tree that was never blocked."""

    element = ELEMENT
    stub_commands = ()

    def test_nothing_to_undo(self):
        self.root.write("/usr/sbin/start-stop-daemon", "real\n", mode=0o755)
        self.run_hook("cleanup", "40-unblock-daemons")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/usr/sbin/start-stop-daemon"), "real\n")


class TestHttpCache(HookTestCase):
    """root.d/50-build-with-http-cache and cleanup.d/50-remove-img-build-proxy."""

    element = ELEMENT
    stub_commands = ()
    conf = "/etc/apt/apt.conf.d/60img-build-proxy"

    def test_proxy_used_during_build_and_removed_after(self):
        self.root.write("/etc/apt/apt.conf.d/10other", "keep\n")
        self.run_hook("root", "50-build-with-http-cache",
                      env={"http_proxy": "http://proxy.example.invalid:3128"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(self.conf),
                         'Acquire::http::Proxy "http://proxy.example.invalid:3128";\n')
        self.run_hook("cleanup", "50-remove-img-build-proxy")
        self.assertHookSucceeded()
        self.assertFileAbsent(self.conf)
        self.assertEqual(self.root.read("/etc/apt/apt.conf.d/10other"), "keep\n")

    def test_no_proxy_no_conf(self):
        self.run_hook("root", "50-build-with-http-cache")
        self.assertHookSucceeded()
        self.assertFileAbsent(self.conf)
        self.run_hook("cleanup", "50-remove-img-build-proxy")
        self.assertHookSucceeded()


class TestTrimDpkg(HookTestCase):
    """root.d/50-trim-dpkg and cleanup.d/60-untrim-dpkg."""

    element = ELEMENT
    stub_commands = ()

    def test_trim_and_untrim(self):
        self.root.write("/etc/dpkg/dpkg.cfg.d/excludes", "keep\n")
        self.run_hook("root", "50-trim-dpkg")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/dpkg/dpkg.cfg.d/02apt-speedup"),
                         "force-unsafe-io\n")
        self.assertEqual(self.root.read("/etc/apt/apt.conf.d/no-languages"),
                         'Acquire::Languages "none";\n')
        self.run_hook("cleanup", "60-untrim-dpkg")
        self.assertHookSucceeded()
        self.assertFileAbsent("/etc/dpkg/dpkg.cfg.d/02apt-speedup")
        self.assertFileAbsent("/etc/apt/apt.conf.d/no-languages")
        self.assertEqual(self.root.listdir("/etc/dpkg/dpkg.cfg.d"), ["excludes"])


class TestAptRecommends(HookTestCase):
    """pre-install.d/00-disable-apt-recommends."""

    element = ELEMENT
    stub_commands = ()

    def test_recommends_and_suggests_off(self):
        self.root.mkdir("/etc/apt/apt.conf.d")
        self.run_hook("pre-install", "00-disable-apt-recommends")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/apt/apt.conf.d/95disable-recommends"),
                         'APT::Install-Recommends "0";\nAPT::Install-Suggests "0";\n')


class TestAptGetUpdate(HookTestCase):
    """pre-install.d/99-apt-get-update."""

    element = ELEMENT
    stub_commands = ("apt-get",)

    def test_update(self):
        self.run_hook("pre-install", "99-apt-get-update")
        self.assertHookSucceeded()
        self.assertCalled("apt-get", "-y", "update", exact=True, times=1)

    def test_update_failure_fails_the_hook(self):
        self.stubs.add("apt-get", exit_code=100, stderr="E: Failed to fetch\n")
        self.run_hook("pre-install", "99-apt-get-update")
        self.assertHookFailed()
        self.assertOutputContains("Failed to fetch")


class TestFinaliseCleanUpCache(HookTestCase):
    """finalise.d/99-clean-up-cache."""

    element = ELEMENT
    stub_commands = ("apt-get",)

    def setUp(self):
        super().setUp()
        self.root.write(f"{LISTS}/m_dists_bookworm_InRelease", "x")
        self.root.write(f"{LISTS}/lock", "")
        self.root.mkdir(f"{LISTS}/partial")

    def test_clean(self):
        self.run_hook("finalise", "99-clean-up-cache")
        self.assertHookSucceeded()
        self.assertCalled("apt-get", "clean", exact=True)
        self.assertEqual(self.root.listdir(LISTS), ["lock", "partial"])

    def test_cleanup_disabled(self):
        self.run_hook("finalise", "99-clean-up-cache", env={"DIB_DISABLE_APT_CLEANUP": "1"})
        self.assertHookSucceeded()
        self.assertNotCalled("apt-get")
        self.assertIn("m_dists_bookworm_InRelease", self.root.listdir(LISTS))


class TestDpkgManifest(HookTestCase):
    """finalise.d/99-write-dpkg-manifest."""

    element = ELEMENT
    stub_commands = ("dpkg-query",)
    records = ("zstd\tamd64\t1.5.4+dfsg2-5\tii \n"
               "base-files\tamd64\t12.4+deb12u5\tii \n"
               'odd"name\\x\tall\t1:2.0~rc1\trc \n')

    def setUp(self):
        super().setUp()
        # awk is an alternative: /usr/bin/awk -> /etc/alternatives/awk, which a
        # real image has and the fake root needs too.
        awk = os.path.realpath("/usr/bin/awk")
        self.root.mkdir("/etc/alternatives")
        os.symlink(awk, self.root.join("/etc/alternatives/awk"))

    def manifest(self, path="/etc/dib-manifests/dib-manifest-dpkg-image"):
        return json.loads(self.root.read(path))

    def test_manifest_lists_every_package_sorted(self):
        self.stubs.add("dpkg-query", stdout=self.records)
        self.run_hook("finalise", "99-write-dpkg-manifest")
        self.assertHookSucceeded()
        call = self.assertCalled("dpkg-query", "--show")
        self.assertEqual(call.args[1], "--showformat=${binary:Package}\\t${Architecture}\\t"
                                       "${Version}\\t${db:Status-Abbrev}\\n")
        self.assertEqual(self.manifest(), {"packages": [
            {"package": "base-files", "arch": "amd64", "version": "12.4+deb12u5",
             "status": "ii"},
            {"package": 'odd"name\\x', "arch": "all", "version": "1:2.0~rc1", "status": "rc"},
            {"package": "zstd", "arch": "amd64", "version": "1.5.4+dfsg2-5", "status": "ii"},
        ]})
        self.assertFileAbsent("/etc/dib-manifests/dib-manifest-dpkg-image.tmp")

    def test_named_after_the_image_in_the_manifest_dir(self):
        self.stubs.add("dpkg-query", stdout="bash\tamd64\t5.2.15-2+b2\tii \n")
        self.run_hook("finalise", "99-write-dpkg-manifest",
                      env={"IMAGE_NAME": "/srv/out/web-server",
                           "DIB_MANIFEST_IMAGE_DIR": "/var/lib/manifests"})
        self.assertHookSucceeded()
        data = self.manifest("/var/lib/manifests/dib-manifest-dpkg-web-server")
        self.assertEqual([p["package"] for p in data["packages"]], ["bash"])

    def test_no_packages(self):
        self.run_hook("finalise", "99-write-dpkg-manifest")
        self.assertHookSucceeded()
        self.assertEqual(self.manifest(), {"packages": []})

    def test_dpkg_query_failure_leaves_no_manifest(self):
        self.stubs.add("dpkg-query", stdout="bash\tamd64\t5.2\tii \n", exit_code=2)
        self.run_hook("finalise", "99-write-dpkg-manifest")
        self.assertHookFailed()
        self.assertFileAbsent("/etc/dib-manifests/dib-manifest-dpkg-image")
