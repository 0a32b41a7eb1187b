"""The disable-nouveau files, as the hooks that install them see them."""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
ELEMENTS = ELEMENT.parent


def element_env(names):
    array = " ".join(f"[{name}]={ELEMENTS / name}" for name in names)
    return {"IMAGE_ELEMENT": " ".join(names),
            "BASH_FUNC_get_image_element_array%%": f'() {{ echo "{array}"\n}}'}


class TestModprobeFile(HookTestCase):
    """modprobe's extra-data.d/50-modprobe-blacklist copies the blacklist."""

    element = ELEMENTS / "modprobe"
    stub_commands = ()

    def test_blacklist_lands_in_modprobe_d(self):
        self.run_hook("extra-data", "50-modprobe-blacklist",
                      env=element_env(["modprobe", "disable-nouveau"]))
        self.assertHookSucceeded()
        text = self.root.read("/etc/modprobe.d/disable-nouveau.conf")
        self.assertIn("blacklist nouveau\n", text)
        self.assertIn("options nouveau modeset=0\n", text)
        self.assertFileMode("/etc/modprobe.d/disable-nouveau.conf", "0644")


class TestDracutFile(HookTestCase):
    """dracut-regenerate's extra-data.d/50-dracut-conf copies the dracut setting."""

    element = ELEMENTS / "dracut-regenerate"
    stub_commands = ()

    def test_driver_omitted_from_dracut(self):
        self.run_hook("extra-data", "50-dracut-conf",
                      env=element_env(["dracut-regenerate", "disable-nouveau"]))
        self.assertHookSucceeded()
        self.assertFileContains("/etc/dracut.conf.d/disable-nouveau.conf",
                                'omit_drivers+=" nouveau "')
