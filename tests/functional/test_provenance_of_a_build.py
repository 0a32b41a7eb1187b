"""The provenance of a real image: a valid statement whose subject is the
qcow2 by its SHA-256, that dib verify accepts, that one changed byte
fails, and that a warm rebuild writes again without reading the image."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from functional_support import ROOT, needs_build_host

sys.path.insert(0, str(ROOT / "tests" / "unit"))
from provenance_schema import errors  # noqa: E402

pytestmark = [pytest.mark.functional, needs_build_host]

# Fixed, so the two builds below must write the same statement byte for byte.
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def dib_verify(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dib.cli.main", "verify", *map(str, argv)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_vm_image_provenance_verifies_and_one_changed_byte_fails(builds, tmp_path):
    result = builds.run("debian-minimal", "vm", name="vm", env=EPOCH)
    assert result.returncode == 0, result.output[-3000:]
    qcow2 = result.image.with_name("vm.qcow2")
    statement_path = result.image.with_name("vm.provenance.json")
    assert str(statement_path) in result.report["outputs"]
    first = statement_path.read_bytes()
    document = json.loads(first)
    assert errors(document) == []
    assert document["subject"] == [{"name": "vm.qcow2", "digest": {"sha256": sha256(qcow2)}}]
    definition = document["predicate"]["buildDefinition"]
    assert definition["externalParameters"]["elements"] == ["debian-minimal", "vm"]
    kinds = {}
    for dependency in definition["resolvedDependencies"]:
        kinds.setdefault(dependency["annotations"]["kind"], []).append(dependency["name"])
    assert {"base", "debian-minimal", "vm"} <= set(kinds["element"])
    assert kinds["distribution-mirror"] == ["distribution-mirror"]
    assert "linux-image-amd64" in kinds["deb"]

    ok = dib_verify(qcow2)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK ") and sha256(qcow2) in ok.stdout

    # one byte changed, on a copy: the image itself stays as built
    copy = tmp_path / "vm.qcow2"
    copy.write_bytes(qcow2.read_bytes())
    with open(copy, "r+b") as handle:
        handle.seek(copy.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    bad = dib_verify(copy, "--provenance", statement_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "does not match" in bad.stderr and "Traceback" not in bad.stderr

    # warm: the outputs come from the cache with their digest, nothing is
    # read again, and the statement is the same byte for byte
    again = builds.run("debian-minimal", "vm", name="vm", env=EPOCH)
    assert again.returncode == 0, again.output[-3000:]
    assert again.step("outputs")["cached"]
    assert "sha256 of" not in again.output
    assert statement_path.read_bytes() == first
    assert dib_verify(qcow2).returncode == 0
