"""The SBOM of a real image: every package dpkg knows, valid documents,
the copy inside the image, and a warm rebuild that does not read the tree
again."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from functional_support import ROOT, needs_build_host, read_tar_member

sys.path.insert(0, str(ROOT / "tests" / "unit"))
from sbom_schemas import cyclonedx_validator, errors, spdx_validator  # noqa: E402

pytestmark = [pytest.mark.functional, needs_build_host,
              pytest.mark.skipif(shutil.which("dpkg-query") is None,
                                 reason="dpkg-query is not installed")]

# dpkg states in which a package's files are not on disk
ABSENT = {"config-files", "not-installed"}


def dpkg_query(tar: Path, scratch: Path) -> set[tuple[str, str, str]]:
    """(name, version, architecture) of each package whose files are in the
    image, as dpkg-query reads the image's own database."""
    with tarfile.open(tar) as archive:
        members = [m for m in archive.getmembers()
                   if m.name.startswith("./var/lib/dpkg/") and (m.isfile() or m.isdir())]
        archive.extractall(scratch, members=members, filter="data")
    out = subprocess.run(["dpkg-query", f"--admindir={scratch}/var/lib/dpkg", "-W",
                          "-f=${Package} ${Version} ${Architecture} ${db:Status-Status}\n"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()]
    return {(name, version, arch) for name, version, arch, state in rows
            if state not in ABSENT}


def spdx_debs(document: dict) -> set[tuple[str, str, str]]:
    found = set()
    for package in document["packages"]:
        purls = [r["referenceLocator"] for r in package.get("externalRefs", [])
                 if r["referenceType"] == "purl"]
        if purls and purls[0].startswith("pkg:deb/"):
            arch = purls[0].split("arch=")[1].split("&")[0]
            found.add((package["name"], package["versionInfo"], arch))
    return found


def test_vm_image_sbom_lists_what_dpkg_lists_and_validates(builds, tmp_path):
    result = builds.run("-t", "qcow2,tar", "--sbom", "spdx,cyclonedx", "debian-minimal", "vm",
                        name="vm")
    assert result.returncode == 0, result.output[-3000:]
    spdx_path = result.image.with_name("vm.spdx.json")
    cdx_path = result.image.with_name("vm.cdx.json")
    spdx = json.loads(spdx_path.read_text())
    cdx = json.loads(cdx_path.read_text())
    assert errors(spdx_validator(), spdx) == []
    assert errors(cyclonedx_validator(), cdx) == []

    tar = result.image.with_suffix(".tar")
    installed = dpkg_query(tar, tmp_path / "dpkg")
    assert len(installed) > 50
    assert spdx_debs(spdx) == installed
    cdx_debs = {c["name"] for c in cdx["components"] if c.get("purl", "").startswith("pkg:deb/")}
    assert cdx_debs == {name for name, _v, _a in installed}
    # the kernel a vm image needs is there, with its licence from DEP-5
    kernels = [p for p in spdx["packages"] if p["name"].startswith("linux-image-")]
    assert kernels and all(p["licenseDeclared"] != "NOASSERTION" for p in kernels)

    # the same documents inside the image, beside the other manifests
    assert read_tar_member(tar, "./etc/dib-manifests/sbom.spdx.json") == spdx_path.read_bytes()
    assert read_tar_member(tar, "./etc/dib-manifests/sbom.cdx.json") == cdx_path.read_bytes()

    # a warm rebuild reuses the step and puts the files beside the image back
    spdx_before = spdx_path.read_bytes()
    spdx_path.unlink()
    again = builds.run("-t", "qcow2,tar", "--sbom", "spdx,cyclonedx", "debian-minimal", "vm",
                       name="vm")
    assert again.returncode == 0, again.output[-3000:]
    step = again.step("sbom")
    assert step["cached"], step
    assert spdx_path.read_bytes() == spdx_before
