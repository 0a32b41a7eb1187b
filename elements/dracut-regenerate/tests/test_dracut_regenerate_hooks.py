"""Unit tests for the dracut-regenerate element (dib.testing: no root, no network)."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
CHOSEN = "vmlinuz-6.1.0-28-amd64:initrd.img-6.1.0-28-amd64\n"


class TestCheckModules(HookTestCase):
    """extra-data.d/40-dracut-check-modules."""

    element = ELEMENT
    stub_commands = ()

    def check(self, value=None):
        env = {} if value is None else {"DIB_DRACUT_ENABLED_MODULES": value}
        return self.run_hook("extra-data", "40-dracut-check-modules", env=env)

    def test_default_is_valid(self):
        self.check()
        self.assertHookSucceeded()

    def test_module_without_packages_is_valid(self):
        self.check("- name: iscsi\n- name: lvm\n  packages: [lvm2]\n")
        self.assertHookSucceeded()

    def test_not_yaml(self):
        self.check("- name: lvm\n  packages: [lvm2\n")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("dracut-regenerate (extra-data.d/40-dracut-check-modules): "
                                  "DIB_DRACUT_ENABLED_MODULES is not valid YAML")
        self.assertOutputContains("- name: lvm")

    def test_plain_words_are_not_a_list(self):
        self.check("lvm crypt")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_DRACUT_ENABLED_MODULES must be a YAML list")

    def test_entry_without_name(self):
        self.check("- packages: [lvm2]\n")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("entry 1")
        self.assertOutputContains("has no 'name: MODULE'")

    def test_packages_must_be_a_list(self):
        self.check("- name: lvm\n  packages: lvm2\n")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("entry 1 (lvm): 'packages' must be a list of names")

    def test_misspelt_key(self):
        self.check("- name: lvm\n  package: [lvm2]\n")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("unknown keys ['package']")


class TestDracutConf(HookTestCase):
    """extra-data.d/50-dracut-conf."""

    element = ELEMENT
    stub_commands = ()

    def elements(self, tree):
        dirs = {}
        for name, files in tree.items():
            base = self.root.join(f"/srv/elements/{name}")
            base.mkdir(parents=True)
            for rel, text in files.items():
                (base / rel).parent.mkdir(parents=True, exist_ok=True)
                (base / rel).write_text(text)
            dirs[name] = base
        array = " ".join(f"[{name}]={path}" for name, path in dirs.items())
        return {"IMAGE_ELEMENT": " ".join(tree),
                "BASH_FUNC_get_image_element_array%%": f'() {{ echo "{array}"\n}}'}

    def test_conf_files_copied_later_element_wins(self):
        env = self.elements({
            "first": {"dracut.conf.d/10-compress.conf": 'compress="xz"\n',
                      "dracut.conf.d/README": "not a conf\n"},
            "dracut-regenerate": {},
            "second": {"dracut.conf.d/10-compress.conf": 'compress="zstd"\n',
                       "dracut.conf.d/20-hostonly.conf": 'hostonly="no"\n'},
        })
        self.run_hook("extra-data", "50-dracut-conf", env=env)
        self.assertHookSucceeded()
        self.assertEqual(sorted(self.root.listdir("/etc/dracut.conf.d")),
                         ["10-compress.conf", "20-hostonly.conf"])
        self.assertEqual(self.root.read("/etc/dracut.conf.d/10-compress.conf"),
                         'compress="zstd"\n')
        self.assertFileMode("/etc/dracut.conf.d/20-hostonly.conf", "0644")


class TestRegenerate(HookTestCase):
    """finalise.d/50-dracut-regenerate."""

    element = ELEMENT
    stub_commands = {"dracut": None, "install-packages": None,
                     "select-boot-kernel-initrd": {"stdout": CHOSEN}}

    def test_default_modules(self):
        self.run_hook("finalise", "50-dracut-regenerate")
        self.assertHookSucceeded()
        self.assertCalled("install-packages", "cryptsetup", exact=True)
        self.assertCalled("install-packages", "lvm2", exact=True)
        self.assertCalled("dracut", "--force", "--add", "crypt lvm",
                          "/boot/initrd.img-6.1.0-28-amd64", "6.1.0-28-amd64", exact=True)
        self.assertCallOrder("install-packages", "select-boot-kernel-initrd", "dracut")

    def test_modules_from_the_environment(self):
        self.run_hook("finalise", "50-dracut-regenerate",
                      env={"DIB_DRACUT_ENABLED_MODULES": "- name: network\n- name: iscsi\n"})
        self.assertHookSucceeded()
        self.assertNotCalled("install-packages")
        self.assertCalled("dracut", "--add", "network iscsi")

    def test_conf_files_alone_regenerate(self):
        self.root.write("/etc/dracut.conf.d/disable-nouveau.conf", 'omit_drivers+=" nouveau "\n')
        self.run_hook("finalise", "50-dracut-regenerate",
                      env={"DIB_DRACUT_ENABLED_MODULES": "[]"})
        self.assertHookSucceeded()
        self.assertCalled("dracut", "--force", "/boot/initrd.img-6.1.0-28-amd64",
                          "6.1.0-28-amd64", exact=True)

    def test_nothing_to_do(self):
        self.run_hook("finalise", "50-dracut-regenerate",
                      env={"DIB_DRACUT_ENABLED_MODULES": "[]"})
        self.assertHookSucceeded()
        self.assertNotCalled("dracut")

    def test_package_failure_stops_the_build(self):
        self.stubs.add("install-packages", exit_code=100)
        self.run_hook("finalise", "50-dracut-regenerate")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("install-packages exited with status 100")
        self.assertNotCalled("dracut")

    def test_dracut_failure_stops_the_build(self):
        self.stubs.add("dracut", exit_code=1)
        self.run_hook("finalise", "50-dracut-regenerate")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("dracut exited with status 1")
