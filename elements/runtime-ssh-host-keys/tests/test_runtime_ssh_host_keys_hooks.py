"""Unit tests for the runtime-ssh-host-keys element (dib.testing: no root, no network)."""
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
SCRIPT = "/usr/local/sbin/runtime-ssh-host-keys.sh"
UNIT = "/usr/lib/systemd/system/ssh-keygen.service"
# Stand-in for ssh-keygen: writes the key named by -f and its .pub.
FAKE_KEYGEN = ('while [ $# -gt 0 ]; do [ "$1" = -f ] && key=$2; shift; done; '
               'echo private > "$key"; echo public > "$key.pub"')


class TestEnableUnit(HookTestCase):
    """post-install.d/80-ssh-keygen."""

    element = ELEMENT
    stub_commands = ("systemctl",)

    def test_debian_enables_the_unit(self):
        self.root.write(UNIT, "[Unit]\n")
        self.run_hook("post-install", "80-ssh-keygen")
        self.assertHookSucceeded()
        self.assertCalled("systemctl", "enable", "ssh-keygen.service", exact=True)
        self.assertFileExists(UNIT)

    def test_other_systemd_distributions_drop_the_unit(self):
        self.root.write(UNIT, "[Unit]\n")
        self.run_hook("post-install", "80-ssh-keygen", env={"DISTRO_NAME": "fedora"})
        self.assertHookSucceeded()
        self.assertFileAbsent(UNIT)
        self.assertNotCalled("systemctl")

    def test_upstart_needs_nothing(self):
        self.run_hook("post-install", "80-ssh-keygen",
                      env={"DIB_INIT_SYSTEM": "upstart", "DISTRO_NAME": "ubuntu"})
        self.assertHookSucceeded()
        self.assertEqual(self.stubs.calls(), [])

    def test_unknown_init_system(self):
        self.run_hook("post-install", "80-ssh-keygen", env={"DIB_INIT_SYSTEM": "runit"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_INIT_SYSTEM 'runit' is not supported")


class TestRemoveKeys(HookTestCase):
    """cleanup.d/90-remove-ssh-host-keys."""

    element = ELEMENT
    stub_commands = ()

    def test_only_host_keys_are_removed(self):
        for name in ("ssh_host_rsa_key", "ssh_host_rsa_key.pub", "ssh_host_ed25519_key",
                     "ssh_host_ed25519_key.pub", "ssh_host_ecdsa_key"):
            self.root.write(f"/etc/ssh/{name}", "key\n")
        self.root.write("/etc/ssh/sshd_config", "PermitRootLogin no\n")
        self.root.write("/etc/ssh/moduli", "numbers\n")
        self.run_hook("cleanup", "90-remove-ssh-host-keys")
        self.assertHookSucceeded()
        self.assertEqual(sorted(self.root.listdir("/etc/ssh")), ["moduli", "sshd_config"])

    def test_link_out_of_the_tree_is_not_followed(self):
        outside = Path(self.useFixture(fixtures.TempDir()).path) / "precious"
        outside.write_text("keep\n")
        self.root.mkdir("/etc/ssh")
        self.root.join("/etc/ssh/ssh_host_rsa_key").symlink_to(outside)
        self.run_hook("cleanup", "90-remove-ssh-host-keys")
        self.assertHookSucceeded()
        self.assertEqual(outside.read_text(), "keep\n")

    def test_image_without_ssh(self):
        self.run_hook("cleanup", "90-remove-ssh-host-keys")
        self.assertHookSucceeded()
        self.assertFileAbsent("/etc/ssh")


class TestBootScript(HookTestCase):
    """static/usr/local/sbin/runtime-ssh-host-keys.sh, run in the fake root."""

    element = ELEMENT
    stub_commands = {"ssh-keygen": {"script": FAKE_KEYGEN}}

    def boot(self):
        target = self.root.join(SCRIPT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ELEMENT / "static" / SCRIPT.lstrip("/"), target)
        probe = Path(self.useFixture(fixtures.TempDir()).path) / "boot-probe"
        hook = probe / "install.d" / "10-run"
        hook.parent.mkdir(parents=True)
        hook.write_text(f"#!/bin/bash\nexec {SCRIPT}\n")
        hook.chmod(0o755)
        return self.run_hook(probe, "install", "10-run")

    def keygen_types(self):
        types = []
        for call in self.stubs.calls("ssh-keygen"):
            types.append(call.args[call.args.index("-t") + 1])
        return types

    def test_missing_keys_are_made_without_passphrase(self):
        self.boot()
        self.assertHookSucceeded()
        self.assertEqual(self.keygen_types(), ["rsa", "ecdsa", "ed25519"])
        self.assertCalled("ssh-keygen", "-N", "", "-C")
        self.assertCalled("ssh-keygen", "-f", "/etc/ssh/ssh_host_ed25519_key")
        for kind in ("rsa", "ecdsa", "ed25519"):
            self.assertFileExists(f"/etc/ssh/ssh_host_{kind}_key")

    def test_existing_keys_are_kept(self):
        self.root.write("/etc/ssh/ssh_host_ed25519_key", "mine\n")
        self.boot()
        self.assertHookSucceeded()
        self.assertEqual(self.keygen_types(), ["rsa", "ecdsa"])
        self.assertEqual(self.root.read("/etc/ssh/ssh_host_ed25519_key"), "mine\n")

    def test_key_written_by_someone_else_meanwhile_is_fine(self):
        # ssh-keygen refuses (stdin closed) because the key appeared meanwhile.
        self.stubs.add("ssh-keygen", script=FAKE_KEYGEN + "; exit 1")
        self.boot()
        self.assertHookSucceeded()

    def test_failure_to_make_a_key_is_reported(self):
        self.stubs.add("ssh-keygen", exit_code=1, stderr="ssh-keygen: unknown key type\n")
        self.boot()
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("could not make /etc/ssh/ssh_host_rsa_key")

    def test_real_keys_with_the_hosts_ssh_keygen(self):
        if not shutil.which("ssh-keygen", path="/usr/bin:/bin"):
            self.skipTest("ssh-keygen is not installed on this host")
        (self.stubs.bin_dir / "ssh-keygen").unlink()
        # ssh-keygen looks the user up, as in any image.
        self.root.write("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
        self.boot()
        self.assertHookSucceeded()
        self.assertFileContains("/etc/ssh/ssh_host_ed25519_key.pub", regex=r"^ssh-ed25519 ")
        self.assertFileContains("/etc/ssh/ssh_host_rsa_key.pub", regex=r"^ssh-rsa ")
        self.assertFileMode("/etc/ssh/ssh_host_ed25519_key", "0600")
