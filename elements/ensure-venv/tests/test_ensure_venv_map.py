"""ensure-venv has no hooks; its pkg-map decides which package brings venv."""
import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path

import testtools

from dib.elements.discovery import shipped_hooks_dir

ELEMENT = Path(__file__).resolve().parents[1]


def pkg_map_tool():
    """The pkg-map helper that package-installs uses in the image, as a module."""
    path = shipped_hooks_dir() / "pkg-map"
    loader = importlib.machinery.SourceFileLoader("dib_pkg_map_helper", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name,
                                                                             loader))
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


class TestPackageMap(testtools.TestCase):

    def packages(self, distro, release):
        data = json.loads((ELEMENT / "pkg-map").read_text())
        return pkg_map_tool().build_name_map(data, distro, release)["python3-venv"].split()

    def test_debian_family_installs_python3_venv(self):
        self.assertEqual(self.packages("debian", "bookworm"), ["python3-venv"])
        self.assertEqual(self.packages("ubuntu", "noble"), ["python3-venv"])

    def test_python3_carries_venv_elsewhere(self):
        self.assertEqual(self.packages("rocky", "9"), ["python3"])
        self.assertEqual(self.packages("opensuse", "15.5"), ["python3"])
        self.assertEqual(self.packages("gentoo", None), ["dev-lang/python"])

    def test_unknown_distribution_installs_nothing(self):
        self.assertEqual(self.packages("alpine", "3.19"), [])
