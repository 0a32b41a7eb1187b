"""DIB's own elements, from its released wheel, resolve and plan under dib as under DIB.

DIB's resolver (diskimage_builder.element_dependencies) is imported from the
wheel and asked the same questions; it returns sets (its order varies from run
to run), so the comparison is of sets, and our order is checked to be stable.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from functional_support import ROOT

pytestmark = pytest.mark.functional

WHEEL_DIR = Path("/var/tmp/dib-functional/dib-wheel")
VERSION = "3.43.0"
COMBINATIONS = [
    ["debian-minimal"],
    ["base", "debian-minimal", "vm", "block-device-mbr"],
    ["base", "ubuntu-minimal", "vm", "block-device-efi", "cloud-init-datasources"],
    ["base", "centos", "vm", "block-device-gpt", "growroot", "devuser"],
    ["base", "fedora-minimal", "dhcp-all-interfaces", "openssh-server"],
    ["base", "debian", "vm", "block-device-efi", "simple-init"],
    ["base", "rocky-container", "vm", "block-device-efi-lvm"],
    ["base", "ubuntu", "iso"],
]


@pytest.fixture(scope="module")
def dib_release() -> Path:
    """DIB's released package, unpacked (pip reaches PyPI on these machines)."""
    target = WHEEL_DIR / VERSION
    if not (target / "diskimage_builder").is_dir():
        WHEEL_DIR.mkdir(parents=True, exist_ok=True)
        fetched = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
             f"diskimage-builder=={VERSION}", "-d", str(WHEEL_DIR)],
            capture_output=True, text=True)
        if fetched.returncode != 0:
            pytest.skip(f"cannot download diskimage-builder {VERSION}: {fetched.stderr[-300:]}")
        wheel = next(WHEEL_DIR.glob(f"diskimage_builder-{VERSION}-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                path = Path(archive.extract(info, target))
                mode = info.external_attr >> 16
                if mode & 0o777:
                    path.chmod(mode & 0o777)
    return target


def dib_resolution(release: Path, names: list[str]) -> set[str]:
    sys.path.insert(0, str(release))
    try:
        module = importlib.import_module("diskimage_builder.element_dependencies")
        paths = str(release / "diskimage_builder" / "elements")
        return {name for name, _path in module.get_elements(names, paths)}
    finally:
        sys.path.remove(str(release))


def our_resolution(release: Path, names: list[str], seed: str = "0") -> list[str]:
    env = dict(os.environ, ELEMENTS_PATH=str(release / "diskimage_builder" / "elements"),
               PYTHONPATH=str(ROOT), PYTHONHASHSEED=seed)
    out = subprocess.run([sys.executable, "-m", "dib.cli.element_info", *names], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize("names", COMBINATIONS, ids=lambda n: "+".join(n))
def test_dib_elements_resolve_to_what_dib_resolves(dib_release, names):
    ours = our_resolution(dib_release, names)
    assert set(ours) == dib_resolution(dib_release, names)
    assert our_resolution(dib_release, names, seed="1") == ours
    assert our_resolution(dib_release, names, seed="2") == ours


def test_every_dib_element_loads_and_plans(dib_release):
    """All of DIB's elements parse (package-installs, pkg-map, svc-map, ...) and a
    dry run of a large image prints every phase without an error."""
    from dib.elements import find_elements
    from dib.plan import make_plan
    index = find_elements([dib_release / "diskimage_builder" / "elements"])
    assert len(index.names()) > 100
    for name in index.names():
        index[name].load_all()
    plan = make_plan([index[n] for n in ["base", "ubuntu-minimal", "vm", "block-device-efi",
                                         "bootloader", "package-installs", "pkg-map",
                                         "dib-init-system", "install-types", "ubuntu-common",
                                         "debootstrap", "dpkg", "install-bin", "manifests",
                                         "sysprep", "modprobe", "cloud-init-datasources"]])
    phases = {step.phase for step in plan.steps}
    assert {"root", "extra-data", "pre-install", "install", "post-install", "finalise",
            "cleanup"} <= phases
