"""Unit tests for the simple-init element (dib.testing: no root, no network)."""
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
# /usr is read-only in the sandbox except /usr/local: the venv goes there.
VENV = "/usr/local/glean-venv"
# python3 stand-in: "python3 -m venv DIR" makes DIR/bin/pip, which logs its
# arguments to DIR/pip.log and, for "install glean" or a checkout, adds
# glean's scripts.
FAKE_PYTHON = r'''
[ "$1 $2" = "-m venv" ] || exit 3
mkdir -p "$3/bin"
cat > "$3/bin/pip" <<PIP
#!/bin/sh
echo "\$*" >> "$3/pip.log"
case "\$*" in *pbr) ;; *) touch "$3/bin/glean" "$3/bin/glean.sh" "$3/bin/glean-install";; esac
PIP
chmod +x "$3/bin/pip"
'''


class TestEnvironment(HookTestCase):
    """environment.d, as every hook of a build sources it."""

    element = ELEMENT
    stub_commands = ()

    def probe(self, **env):
        """Source the element's environment.d and report the values it sets."""
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "simple-init"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        hook = copy / "install.d" / "99-probe"
        hook.write_text("#!/bin/bash\nfor v in DIB_SIMPLE_INIT_NETWORKMANAGER "
                        "DIB_INSTALLTYPE_glean DIB_SIMPLE_INIT_GLEAN_VENV "
                        "DIB_CLOUD_INIT_DATASOURCES; do echo \"$v=${!v}\"; done\n")
        hook.chmod(0o755)
        result = self.run_hook(copy, "install", "99-probe", env=env)
        return dict(line.split("=", 1) for line in result.output.splitlines()
                    if line.startswith("DIB_") and "=" in line)

    def test_debian_defaults(self):
        values = self.probe()
        self.assertHookSucceeded()
        self.assertEqual(values["DIB_SIMPLE_INIT_NETWORKMANAGER"], "0")
        # glean comes from PyPI: its git repository is not fetched.
        self.assertEqual(values["DIB_INSTALLTYPE_glean"], "package")
        self.assertEqual(values["DIB_SIMPLE_INIT_GLEAN_VENV"], "/usr/glean")
        self.assertEqual(values["DIB_CLOUD_INIT_DATASOURCES"], "None")

    def test_red_hat_family_defaults_to_network_manager(self):
        values = self.probe(DISTRO_NAME="rocky", DIB_RELEASE="9")
        self.assertHookSucceeded()
        self.assertEqual(values["DIB_SIMPLE_INIT_NETWORKMANAGER"], "1")

    def test_repo_type_fetches_the_named_repository(self):
        values = self.probe(DIB_INSTALLTYPE_simple_init="repo",
                            DIB_REPOLOCATION_glean="/srv/glean")
        self.assertHookSucceeded()
        self.assertEqual(values["DIB_INSTALLTYPE_glean"], "source")

    def test_repo_type_without_a_location_is_explained(self):
        self.probe(DIB_INSTALLTYPE_simple_init="repo")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("set DIB_REPOLOCATION_glean")

    def test_legacy_scripts_where_there_are_none(self):
        for distro, release in (("fedora", "40"), ("rocky", "9"), ("almalinux", "10")):
            self.probe(DISTRO_NAME=distro, DIB_RELEASE=release,
                       DIB_SIMPLE_INIT_NETWORKMANAGER="0")
            self.assertHookFailed(exit_code=1)
            self.assertOutputContains("has no legacy network scripts")

    def test_network_manager_switch_must_be_a_number(self):
        self.probe(DIB_SIMPLE_INIT_NETWORKMANAGER="yes")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_SIMPLE_INIT_NETWORKMANAGER='yes'")


class TestInstallGlean(HookTestCase):
    """install.d/simple-init-{source,repo}-install/40-glean."""

    element = ELEMENT
    stub_commands = {"python3": {"script": FAKE_PYTHON}}
    hook_env = {"DIB_SIMPLE_INIT_GLEAN_VENV": VENV}

    def assertLinked(self):
        for tool in ("glean", "glean.sh", "glean-install"):
            self.assertEqual(self.root.join(f"/usr/local/bin/{tool}").readlink(),
                             Path(f"{VENV}/bin/{tool}"))

    def test_source_installs_from_pypi(self):
        self.run_hook("install", "simple-init-source-install/40-glean")
        self.assertHookSucceeded()
        self.assertCalled("python3", "-m", "venv", VENV, exact=True)
        self.assertEqual(self.root.read(f"{VENV}/pip.log"),
                         "install --no-cache-dir pbr\ninstall --no-cache-dir glean\n")
        self.assertLinked()

    def test_repo_installs_the_checkout(self):
        self.root.mkdir("/tmp/glean.git")
        self.run_hook("install", "simple-init-repo-install/40-glean")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(f"{VENV}/pip.log"),
                         "install --no-cache-dir pbr\ninstall --no-cache-dir /tmp/glean.git\n")
        self.assertLinked()

    def test_repo_without_checkout_is_explained(self):
        self.run_hook("install", "simple-init-repo-install/40-glean")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("/tmp/glean.git is missing")
        self.assertNotCalled("python3")

    def test_pip_failure_fails_the_hook(self):
        self.stubs.add("python3", script=FAKE_PYTHON.replace('echo "\\$*"', "exit 1; echo"))
        self.run_hook("install", "simple-init-source-install/40-glean")
        self.assertHookFailed()
        self.assertFileAbsent("/usr/local/bin/glean")


class TestGleanInstall(HookTestCase):
    """install.d/50-simple-init."""

    element = ELEMENT
    stub_commands = ("glean-install",)

    def test_legacy_network_scripts(self):
        self.root.write("/etc/modules", "# /etc/modules\nloop\n")
        self.run_hook("install", "50-simple-init")
        self.assertHookSucceeded()
        self.assertCalled("glean-install", exact=True)
        self.assertEqual(self.root.read("/etc/modules"), "# /etc/modules\nloop\n8021q\n")

    def test_network_manager_and_no_fallback(self):
        self.run_hook("install", "50-simple-init",
                      env={"DIB_SIMPLE_INIT_NETWORKMANAGER": "1",
                           "DIB_SIMPLE_INIT_NO_DHCP_FALLBACK": "1"})
        self.assertHookSucceeded()
        self.assertCalled("glean-install", "--use-nm", "--no-dhcp-fallback", exact=True)

    def test_8021q_listed_once(self):
        for _ in range(2):
            self.run_hook("install", "50-simple-init")
        self.assertEqual(self.root.read("/etc/modules"), "8021q\n")

    def test_bad_fallback_value(self):
        self.run_hook("install", "50-simple-init",
                      env={"DIB_SIMPLE_INIT_NO_DHCP_FALLBACK": "true"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_SIMPLE_INIT_NO_DHCP_FALLBACK='true'")
        self.assertNotCalled("glean-install")

    def test_glean_missing_is_explained(self):
        (self.stubs.bin_dir / "glean-install").unlink()
        self.run_hook("install", "50-simple-init")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("glean-install is missing")


class TestRemoveInterfaces(HookTestCase):
    """install.d/60-simple-init-remove-interfaces."""

    element = ELEMENT
    stub_commands = ()

    def test_first_nic_configuration_is_dropped(self):
        self.root.write("/etc/network/interfaces", "auto eth0\niface eth0 inet dhcp\n")
        for name in ("eth0", "ens3", "bond0"):
            self.root.write(f"/etc/network/interfaces.d/{name}", "x\n")
        self.run_hook("install", "60-simple-init-remove-interfaces")
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir("/etc/network/interfaces.d"), ["bond0"])
        self.assertEqual(self.root.read("/etc/network/interfaces"),
                         "auto lo\niface lo inet loopback\n\n"
                         "source /etc/network/interfaces.d/*\n\n")

    def test_red_hat_ifcfg(self):
        scripts = "/etc/sysconfig/network-scripts"
        for name in ("ifcfg-lo", "ifcfg-eth0", "ifcfg-enp1s0"):
            self.root.write(f"{scripts}/{name}", "x\n")
        self.run_hook("install", "60-simple-init-remove-interfaces",
                      env={"DISTRO_NAME": "centos"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir(scripts), ["ifcfg-lo"])


class TestPostInstall(HookTestCase):
    """post-install.d/80-simple-init."""

    element = ELEMENT
    stub_commands = ("systemctl",)

    def test_opensuse_enables_wicked(self):
        self.run_hook("post-install", "80-simple-init", env={"DISTRO_NAME": "opensuse"})
        self.assertHookSucceeded()
        self.assertCalled("systemctl", "enable", "wicked.service", exact=True)

    def test_debian_needs_nothing(self):
        self.run_hook("post-install", "80-simple-init")
        self.assertHookSucceeded()
        self.assertNotCalled("systemctl")

    def test_unknown_init_system(self):
        self.run_hook("post-install", "80-simple-init", env={"DIB_INIT_SYSTEM": "runit"})
        self.assertHookFailed(exit_code=1)
