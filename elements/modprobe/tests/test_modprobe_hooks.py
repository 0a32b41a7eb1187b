"""Unit tests for the modprobe element's hooks (dib.testing: no root, no network)."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
BLACKLIST = "/etc/modprobe.d/blacklist.conf"


class TestCopyModprobeFiles(HookTestCase):
    """extra-data.d/50-modprobe-blacklist."""

    element = ELEMENT
    stub_commands = ()

    def elements(self, tree):
        """Element directories (name -> {file: (text, mode)}) and the
        environment a build gives the hook for them."""
        dirs = {}
        for name, files in tree.items():
            # Under the fake root: a host-phase sandbox hides the host's /tmp.
            base = self.root.join(f"/srv/elements/{name}")
            base.mkdir(parents=True)
            for rel, (text, mode) in files.items():
                path = base / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                path.chmod(mode)
            dirs[name] = base
        array = " ".join(f"[{name}]={path}" for name, path in dirs.items())
        return {"IMAGE_ELEMENT": " ".join(tree),
                "BASH_FUNC_get_image_element_array%%": f'() {{ echo "{array}"\n}}'}

    def test_conf_files_of_every_element_are_copied(self):
        env = self.elements({
            "nic-quirks": {"modprobe.d/ixgbe.conf": ("options ixgbe allow_unsupported_sfp=1\n",
                                                     0o600),
                           "modprobe.d/notes.txt": ("not for modprobe\n", 0o644)},
            "modprobe": {},
            "storage": {"modprobe.d/nvme.conf": ("options nvme_core multipath=N\n", 0o644)},
        })
        self.run_hook("extra-data", "50-modprobe-blacklist", env=env)
        self.assertHookSucceeded()
        self.assertEqual(sorted(self.root.listdir("/etc/modprobe.d")),
                         ["ixgbe.conf", "nvme.conf"])
        self.assertEqual(self.root.read("/etc/modprobe.d/ixgbe.conf"),
                         "options ixgbe allow_unsupported_sfp=1\n")
        self.assertFileMode("/etc/modprobe.d/ixgbe.conf", "0644")

    def test_later_element_wins_a_name_clash(self):
        env = self.elements({
            "first": {"modprobe.d/blacklist-extra.conf": ("blacklist a\n", 0o644)},
            "second": {"modprobe.d/blacklist-extra.conf": ("blacklist b\n", 0o644)},
        })
        self.run_hook("extra-data", "50-modprobe-blacklist", env=env)
        self.assertHookSucceeded()
        self.assertEqual(self.root.read("/etc/modprobe.d/blacklist-extra.conf"),
                         "blacklist b\n")

    def test_no_files_anywhere(self):
        env = self.elements({"base": {}, "modprobe": {}})
        self.run_hook("extra-data", "50-modprobe-blacklist", env=env)
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir("/etc/modprobe.d"), [])

    def test_outside_a_build_the_element_list_is_missing(self):
        self.run_hook("extra-data", "50-modprobe-blacklist")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("get_image_element_array is not defined")


class TestBlacklist(HookTestCase):
    """install.d/80-modprobe-blacklist."""

    element = ELEMENT
    stub_commands = ()

    def test_modules_are_blacklisted(self):
        self.run_hook("install", "80-modprobe-blacklist",
                      env={"DIB_MODPROBE_BLACKLIST": " igb  floppy\tsnd-pcsp "})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(BLACKLIST),
                         "blacklist igb\nblacklist floppy\nblacklist snd-pcsp\n")
        self.assertFileMode(BLACKLIST, "0644")

    def test_existing_lines_kept_and_not_repeated(self):
        self.root.write(BLACKLIST, "# from a package\nblacklist evbug\nblacklist igb\n")
        self.run_hook("install", "80-modprobe-blacklist",
                      env={"DIB_MODPROBE_BLACKLIST": "igb usbmouse igb"})
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(BLACKLIST), "# from a package\nblacklist evbug\n"
                                                    "blacklist igb\nblacklist usbmouse\n")

    def test_unset_or_blank_writes_nothing(self):
        for value in (None, "  "):
            env = {} if value is None else {"DIB_MODPROBE_BLACKLIST": value}
            self.run_hook("install", "80-modprobe-blacklist", env=env)
            self.assertHookSucceeded()
            self.assertFileAbsent(BLACKLIST)

    def test_something_that_is_not_a_module_name_is_refused(self):
        self.run_hook("install", "80-modprobe-blacklist",
                      env={"DIB_MODPROBE_BLACKLIST": "igb,floppy"})
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_MODPROBE_BLACKLIST holds 'igb,floppy'")
        self.assertFileAbsent(BLACKLIST)
