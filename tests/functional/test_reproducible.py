"""Reproducible builds: two cold builds of debian-minimal vm with
SOURCE_DATE_EPOCH give the same bytes, and --check-reproducible names the
file an element fills with the time."""
from __future__ import annotations

import shutil

import pytest

from dib.outputs.base import file_digest
from functional_support import needs_build_host

pytestmark = [pytest.mark.functional, needs_build_host]

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
TYPES = ("tar", "raw", "qcow2")


def test_two_cold_builds_give_identical_outputs(builds, tmp_path):
    """Each build with a phase cache and an image cache of its own, at the
    same output path (it is recorded in the image's manifests)."""
    digests = []
    for n in (1, 2):
        result = builds.run("-t", ",".join(TYPES), "--image-cache", str(tmp_path / f"dl{n}"),
                            "debian-minimal", "vm", name="vm", env=EPOCH,
                            cache_dir=tmp_path / f"cache{n}")
        assert result.returncode == 0, result.output[-3000:]
        files = [result.image.with_name(f"vm.{kind}") for kind in TYPES]
        files += [result.image.with_name(f"vm.{name}") for name in ("spdx.json",
                                                                  "provenance.json")]
        digests.append({f.name: file_digest(f) for f in files})
        kept = tmp_path / f"build{n}"
        kept.mkdir()
        for path in result.image.parent.glob("vm.*"):
            shutil.move(str(path), kept / path.name)
        shutil.rmtree(tmp_path / f"cache{n}")     # the next build starts cold
    assert digests[0] == digests[1]


def test_check_reproducible_names_the_file_that_holds_the_time(builds, tmp_path):
    builds.element("stamp", {
        "element-deps": "debian-minimal\n",
        "install.d/50-stamp": "#!/bin/bash\nset -eu\ndate +%s%N > /etc/build-stamp\n",
    })
    # No SBOM: it would name the stamp's digest, inside the image too.
    # Caches of its own: the second build installs what the archive holds
    # now, and the shared cache may hold packages the archive has replaced.
    result = builds.run("--check-reproducible", "-t", "tar", "--sbom", "none",
                        "--image-cache", str(tmp_path / "downloads"), "stamp",
                        name="stamped", env=EPOCH, cache_dir=tmp_path / "cache")
    assert result.returncode != 0, result.output[-3000:]
    report = result.image.with_name("stamped.reproducible.txt").read_text()
    assert "DIFFERS stamped.tar" in report
    assert "./etc/build-stamp: contents" in report
    # nothing else in the image differs
    tar_lines = report.split("DIFFERS stamped.tar", 1)[1].splitlines()[1:]
    assert [line for line in tar_lines if line.startswith("      ./")] == [
        "      ./etc/build-stamp: contents"]
    assert "the two builds differ" in result.output
