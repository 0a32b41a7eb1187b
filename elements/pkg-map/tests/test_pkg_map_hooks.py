"""Unit tests for the pkg-map element's hook (dib.testing: no root, no network).

tests/unit/test_hooks_elements.py checks which elements' maps are copied;
these check the copies and the errors.
"""
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
HOOK = ("extra-data", "10-create-pkg-map-dir")


def element_array(**elements):
    """DIB's exported get_image_element_array shell function."""
    pairs = " ".join(f"[{name}]={path}" for name, path in elements.items())
    return {"BASH_FUNC_get_image_element_array%%": f'() {{  echo "{pairs}"\n}}'}


class TestPkgMapDir(HookTestCase):
    element = ELEMENT
    stub_commands = ()

    def test_maps_copied_under_element_names(self):
        # The element directories must be visible in the sandbox: under the root.
        self.root.write("/srv/elements/el-a/pkg-map", '{"default": {"a": "b"}}\n')
        self.root.write("/srv/elements/el-b/README.rst", "no map\n")
        self.root.write("/usr/share/pkg-map/el-a", "stale\n")
        self.run_hook(*HOOK, env=element_array(**{
            "el-a": self.root.join("/srv/elements/el-a"),
            "el-b": self.root.join("/srv/elements/el-b")}))
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir("/usr/share/pkg-map"), ["el-a"])
        self.assertEqual(self.root.read("/usr/share/pkg-map/el-a"), '{"default": {"a": "b"}}\n')

    def test_no_elements_gives_an_empty_dir(self):
        self.run_hook(*HOOK, env=element_array())
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir("/usr/share/pkg-map"), [])

    def test_without_the_element_list_it_fails(self):
        self.run_hook(*HOOK)
        self.assertHookFailed()
