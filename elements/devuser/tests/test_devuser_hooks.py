"""Unit tests for the devuser element (dib.testing: no root, no network)."""
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDevUserKey dev@laptop\n"
# Stand-in for useradd: adds the user (last argument) to passwd and group.
FAKE_USERADD = ('for user; do :; done; echo "$user:x:1001:1001::/home/$user:/bin/sh" >> /etc/passwd; '
                'echo "$user:x:1001:" >> /etc/group; mkdir -p "/home/$user"')


class TestCheck(HookTestCase):
    """preflight.d/50-devuser."""

    element = ELEMENT
    stub_commands = ()

    def check(self, **env):
        return self.run_hook("preflight", "50-devuser", env=env)

    def test_missing_key_file_is_an_error(self):
        self.check(DIB_DEV_USER_AUTHORIZED_KEYS="/srv/no-such-key.pub")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("devuser (preflight.d/50-devuser): DIB_DEV_USER_AUTHORIZED_KEYS="
                                  "'/srv/no-such-key.pub' does not exist")
        self.assertOutputContains("/dev/null to install none")

    def test_existing_key_file_and_dev_null_pass(self):
        keys = self.root.write("/srv/keys.pub", KEY)
        for value in (str(keys), "/dev/null"):
            self.check(DIB_DEV_USER_AUTHORIZED_KEYS=value)
            self.assertHookSucceeded()

    def test_sudo_values(self):
        for value in ("yes", "1", "True", "no", "0", "false", ""):
            self.check(DIB_DEV_USER_PWDLESS_SUDO=value)
            self.assertHookSucceeded()

    def test_malformed_sudo_value_is_an_error(self):
        self.check(DIB_DEV_USER_PWDLESS_SUDO="always")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("devuser (preflight.d/50-devuser): DIB_DEV_USER_PWDLESS_SUDO="
                                  "'always' is not a yes/no value")

    def test_bad_user_name_is_an_error(self):
        self.check(DIB_DEV_USER_USERNAME="Dev User")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_DEV_USER_USERNAME='Dev User' is not a valid user name")

    def test_relative_shell_is_an_error(self):
        self.check(DIB_DEV_USER_SHELL="zsh")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_DEV_USER_SHELL='zsh' must be the full path")


class TestKeys(HookTestCase):
    """extra-data.d/50-devuser."""

    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        # Under the fake root: a host-phase sandbox hides the host's /tmp.
        self.home = self.root.join("/srv/builder")
        (self.home / ".ssh").mkdir(parents=True)
        self.hooks = self.root.join("/srv/hooks")
        self.hooks.mkdir(parents=True)

    def keep(self, **env):
        full = {"HOME": str(self.home), "TMP_HOOKS_PATH": str(self.hooks), **env}
        return self.run_hook("extra-data", "50-devuser", env=full)

    def kept(self):
        path = self.hooks / "devuser-ssh-authorized-keys"
        return path.read_text() if path.exists() else None

    def test_key_file_is_kept(self):
        keys = self.root.write("/srv/keys.pub", KEY)
        self.keep(DIB_DEV_USER_AUTHORIZED_KEYS=str(keys))
        self.assertHookSucceeded()
        self.assertEqual(self.kept(), KEY)

    def test_dev_null_installs_no_key(self):
        (self.home / ".ssh" / "id_rsa.pub").write_text(KEY)
        self.keep(DIB_DEV_USER_AUTHORIZED_KEYS="/dev/null")
        self.assertHookSucceeded()
        self.assertIsNone(self.kept())

    def test_build_users_key_by_default(self):
        (self.home / ".ssh" / "id_ed25519.pub").write_text(KEY)
        self.keep()
        self.assertHookSucceeded()
        self.assertEqual(self.kept(), KEY)

    def test_rsa_key_comes_first(self):
        (self.home / ".ssh" / "id_ed25519.pub").write_text(KEY)
        (self.home / ".ssh" / "id_rsa.pub").write_text("ssh-rsa AAAArsa dev@laptop\n")
        self.keep()
        self.assertEqual(self.kept(), "ssh-rsa AAAArsa dev@laptop\n")

    def test_no_key_anywhere(self):
        self.keep()
        self.assertHookSucceeded()
        self.assertIsNone(self.kept())


class TestCreateUser(HookTestCase):
    """install.d/50-devuser."""

    element = ELEMENT
    # The sandbox maps no uid but root: chown records instead of acting.
    stub_commands = {"useradd": {"script": FAKE_USERADD}, "usermod": None, "chpasswd": None,
                     "chown": None, "visudo": None}

    def setUp(self):
        super().setUp()
        self.root.write("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
        self.root.write("/etc/group", "root:x:0:\nwheel:x:10:\nadm:x:4:\n")
        self.copy = Path(self.useFixture(fixtures.TempDir()).path) / "devuser"
        shutil.copytree(ELEMENT, self.copy, ignore=shutil.ignore_patterns("tests"))

    def create(self, keys=None, **env):
        if keys is not None:
            (self.copy / "devuser-ssh-authorized-keys").write_text(keys)
        return self.run_hook(self.copy, "install", "50-devuser", env=env)

    def test_defaults(self):
        self.create()
        self.assertHookSucceeded()
        self.assertCalled("useradd", "-m", "devuser", exact=True)
        self.assertNotCalled("usermod")
        self.assertNotCalled("chpasswd")
        self.assertFileAbsent("/etc/sudoers.d/devuser")
        self.assertFileAbsent("/home/devuser/.ssh")
        self.assertCalled("chown", "-R", "devuser:devuser", "/home/devuser", exact=True)

    def test_name_and_shell(self):
        self.root.write("/usr/local/bin/fish", "#!/bin/sh\n", mode=0o755)
        self.create(DIB_DEV_USER_USERNAME="hacker", DIB_DEV_USER_SHELL="/usr/local/bin/fish")
        self.assertHookSucceeded()
        self.assertCalled("useradd", "-m", "-s", "/usr/local/bin/fish", "hacker", exact=True)
        self.assertNotIn("warning", self.last_result.output)

    def test_missing_shell_warns(self):
        self.create(DIB_DEV_USER_SHELL="/usr/bin/no-such-shell")
        self.assertHookSucceeded()
        self.assertOutputContains("warning: /usr/bin/no-such-shell is not in the image")

    def test_groups(self):
        self.create(DIB_DEV_USER_GROUPS="wheel,adm")
        self.assertHookSucceeded()
        self.assertCalled("usermod", "-a", "-G", "wheel,adm", "devuser", exact=True)

    def test_missing_group_is_an_error(self):
        self.create(DIB_DEV_USER_GROUPS="wheel,docker")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("devuser (install.d/50-devuser): DIB_DEV_USER_GROUPS names "
                                  "group 'docker', but the image has no such group")
        self.assertNotCalled("usermod")

    def test_password_is_set_and_not_traced(self):
        self.create(DIB_DEV_USER_PASSWORD="s3cret pass", DIB_DEBUG_TRACE="1")
        self.assertHookSucceeded()
        self.assertCalled("chpasswd", stdin="devuser:s3cret pass\n")
        # The build traces environment.d itself; the hook's own trace must not show it.
        hook_output = self.last_result.output.split("install.d/50-devuser", 1)[1]
        self.assertIn("+ useradd -m devuser", hook_output)
        self.assertNotIn("s3cret", hook_output)

    def test_passwordless_sudo(self):
        self.create(DIB_DEV_USER_PWDLESS_SUDO="yes")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/sudoers.d/devuser"),
                         "devuser ALL=(ALL) NOPASSWD:ALL\n")
        self.assertFileMode("/etc/sudoers.d/devuser", "0440")
        self.assertCalled("visudo", "-c", "-f", "/etc/sudoers.d/devuser", exact=True)

    def test_no_means_no(self):
        self.create(DIB_DEV_USER_PWDLESS_SUDO="no")
        self.assertHookSucceeded()
        self.assertFileAbsent("/etc/sudoers.d/devuser")

    def test_rule_visudo_rejects_is_removed(self):
        self.stubs.add("visudo", exit_code=1, stderr="parse error\n")
        self.create(DIB_DEV_USER_PWDLESS_SUDO="1")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("visudo rejected the sudo rule for devuser")
        self.assertFileAbsent("/etc/sudoers.d/devuser")

    def test_authorized_keys(self):
        self.create(keys=KEY)
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/home/devuser/.ssh/authorized_keys"), KEY)
        self.assertFileMode("/home/devuser/.ssh", "0700")
        self.assertFileMode("/home/devuser/.ssh/authorized_keys", "0600")
        self.assertCalled("chown", "-R", "devuser:devuser", "/home/devuser", exact=True)

    def test_existing_user_is_an_error(self):
        self.create(DIB_DEV_USER_USERNAME="root")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_DEV_USER_USERNAME='root' already exists in the image")
        self.assertNotCalled("useradd")
