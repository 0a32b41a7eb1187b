"""Unit tests for the local-config element (dib.testing: no root, no network)."""
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuildUserKey me@buildhost\n"
PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"
GROUP = "root:x:0:\nalice:x:1000:\n"


class TestCopyKeys(HookTestCase):
    """extra-data.d/62-ssh-key."""

    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        # Under the fake root: a host-phase sandbox hides the host's /tmp.
        self.home = self.root.join("/srv/builder")
        self.home.mkdir(parents=True)
        self.hooks = self.root.join("/srv/hooks")
        self.hooks.mkdir(parents=True)
        self.env = {"HOME": str(self.home), "TMP_HOOKS_PATH": str(self.hooks)}

    def test_build_users_keys_are_kept_for_the_image(self):
        (self.home / ".ssh").mkdir()
        (self.home / ".ssh" / "authorized_keys").write_text(KEY)
        self.run_hook("extra-data", "62-ssh-key", env=self.env)
        self.assertHookSucceeded()
        self.assertEqual((self.hooks / "ssh-authorized-keys").read_text(), KEY)

    def test_no_keys_no_file(self):
        self.run_hook("extra-data", "62-ssh-key", env=self.env)
        self.assertHookSucceeded()
        self.assertOutputContains("no SSH key is copied")
        self.assertFalse((self.hooks / "ssh-authorized-keys").exists())


class TestInstallKeys(HookTestCase):
    """install.d/62-ssh-key."""

    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        self.root.write("/etc/passwd", PASSWD)
        self.root.write("/etc/group", GROUP)
        self.copy = Path(self.useFixture(fixtures.TempDir()).path) / "local-config"
        shutil.copytree(ELEMENT, self.copy, ignore=shutil.ignore_patterns("tests"))

    def install(self, env=None, keys=True):
        if keys:
            # What extra-data.d left in the hooks directory.
            (self.copy / "ssh-authorized-keys").write_text(KEY)
        return self.run_hook(self.copy, "install", "62-ssh-key", env=env or {})

    def test_root_gets_the_keys_by_default(self):
        self.root.write("/root/.ssh/authorized_keys", "ssh-rsa AAAAexisting old@key\n")
        self.install()
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/root/.ssh/authorized_keys"),
                         "ssh-rsa AAAAexisting old@key\n" + KEY)
        self.assertFileMode("/root/.ssh", "0700")
        self.assertFileMode("/root/.ssh/authorized_keys", "0600")

    def test_other_user_owns_the_keys(self):
        # The sandbox maps no uid but root: chown is a stub that records.
        self.stubs.add("chown")
        self.root.mkdir("/home/alice")
        self.install(env={"DIB_LOCAL_CONFIG_USERNAME": "alice"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/home/alice/.ssh/authorized_keys"), KEY)
        self.assertCalled("chown", "alice:alice", "/home/alice/.ssh",
                          "/home/alice/.ssh/authorized_keys", exact=True)
        self.assertFileMode("/home/alice/.ssh", "0700")
        self.assertFileAbsent("/root/.ssh")

    def test_unknown_user_is_an_error(self):
        self.install(env={"DIB_LOCAL_CONFIG_USERNAME": "bob"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("local-config (install.d/62-ssh-key): "
                                  "DIB_LOCAL_CONFIG_USERNAME='bob' is not a user of the image")
        self.assertFileAbsent("/home/bob")

    def test_nothing_without_keys(self):
        self.install(env={"DIB_LOCAL_CONFIG_USERNAME": "bob"}, keys=False)
        self.assertHookSucceeded()
        self.assertFileAbsent("/root/.ssh")


class TestProxySettings(HookTestCase):
    """pre-install.d/02-proxy-settings."""

    element = ELEMENT
    stub_commands = ()
    # The host's own proxy must not leak into these tests.
    hook_env = {"http_proxy": "", "https_proxy": "", "no_proxy": ""}

    def test_apt_gets_the_proxies(self):
        self.run_hook("pre-install", "02-proxy-settings", env={
            "http_proxy": "http://proxy.example.com:3128", "https_proxy": "http://proxy.example.com:3129",
            "no_proxy": "localhost,10.0.0.1"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/apt/apt.conf.d/02-use-http-proxy"),
                         'Acquire::http::Proxy "http://proxy.example.com:3128";\n')
        self.assertEqual(self.root.read("/etc/apt/apt.conf.d/02-use-https-proxy"),
                         'Acquire::https::Proxy "http://proxy.example.com:3129";\n')
        self.assertEqual(self.root.read("/etc/apt/apt.conf.d/02-no-proxy"),
                         'Acquire::http::Proxy::localhost "DIRECT";\n'
                         'Acquire::http::Proxy::10.0.0.1 "DIRECT";\n')

    def test_no_proxy_nothing_written(self):
        self.run_hook("pre-install", "02-proxy-settings")
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir("/etc/apt/apt.conf.d"), [])

    def test_yum_and_zypper(self):
        self.root.write("/etc/yum.conf", "[main]\ngpgcheck=1\n")
        self.root.write("/etc/sysconfig/proxy",
                        'PROXY_ENABLED="no"\nHTTP_PROXY=""\nHTTPS_PROXY=""\nNO_PROXY="localhost"\n')
        self.run_hook("pre-install", "02-proxy-settings", env={
            "http_proxy": "http://proxy.example.com:3128", "no_proxy": "localhost,build"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/yum.conf"),
                         "[main]\nproxy=http://proxy.example.com:3128\ngpgcheck=1\n")
        self.assertEqual(self.root.read("/etc/sysconfig/proxy"),
                         'PROXY_ENABLED="yes"\nHTTP_PROXY="http://proxy.example.com:3128"\n'
                         'HTTPS_PROXY=""\nNO_PROXY="localhost,build"\n')
