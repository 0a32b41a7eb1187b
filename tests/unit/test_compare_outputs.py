"""Comparing two builds' outputs: by SHA-256, then what differs inside."""
from __future__ import annotations

import io
import json
import shutil
import tarfile

import pytest

from dib import runner
from dib.outputs import compare

needs_e2fsprogs = pytest.mark.skipif(
    not shutil.which("mkfs.ext4", path="/usr/sbin:/sbin:/usr/bin"),
    reason="e2fsprogs not installed")


def _tar(path, members):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mtime in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tar_report_names_member_contents_times_and_missing_members(tmp_path):
    a = _tar(tmp_path / "a.tar", [("./etc/stamp", b"1", 10), ("./etc/same", b"s", 10),
                                  ("./etc/old", b"o", 10), ("./etc/time", b"t", 10)])
    b = _tar(tmp_path / "b.tar", [("./etc/stamp", b"2", 10), ("./etc/same", b"s", 10),
                                  ("./etc/new", b"n", 10), ("./etc/time", b"t", 20)])
    lines = compare.tar_differences(a, b)
    assert "./etc/stamp: contents" in lines
    assert "./etc/time: mtime 10 != 20" in lines
    assert "only in the first: ./etc/old" in lines
    assert "only in the second: ./etc/new" in lines
    assert not any("./etc/same" in line for line in lines)


def test_compare_files_by_sha256_and_report(tmp_path):
    first, second = tmp_path / "1", tmp_path / "2"
    for d, stamp in ((first, 1), (second, 2)):
        (d / "X.d").mkdir(parents=True)
        _tar(d / "X.tar", [("./etc/stamp", str(stamp).encode(), 10)])
        (d / "X.spdx.json").write_text(json.dumps({"name": "X", "packages": []}))
        (d / "X.d" / "dib-manifest.txt").write_text(f"built {stamp}\n")
        (d / "other.raw").write_text("not this build's")
    results = compare.compare_files(compare.output_files(first, "X"),
                                    compare.output_files(second, "X"))
    by_name = {r.name: r for r in results}
    assert sorted(by_name) == ["X.d/dib-manifest.txt", "X.spdx.json", "X.tar"]
    assert by_name["X.spdx.json"].same
    assert not by_name["X.tar"].same and by_name["X.tar"].details == ["./etc/stamp: contents"]
    assert "-built 1" in by_name["X.d/dib-manifest.txt"].details
    text = compare.report_text(results)
    assert text.startswith("1 of 3 output files are identical")
    assert "DIFFERS X.tar" in text and "./etc/stamp: contents" in text


def test_a_file_only_one_build_wrote(tmp_path):
    (tmp_path / "a").write_text("x")
    (result,) = compare.compare_files({"X.qcow2": tmp_path / "a"}, {})
    assert not result.same and result.details == ["only the first build wrote it"]


@needs_e2fsprogs
def test_disk_report_names_the_files_that_differ(tmp_path):
    raws = []
    for n in (1, 2):
        tree = tmp_path / f"tree{n}"
        (tree / "etc").mkdir(parents=True)
        (tree / "etc" / "same").write_text("same\n" * 1000)
        (tree / "etc" / "stamp").write_text(f"{n}\n" * 1000)
        raw = tmp_path / f"{n}.raw"
        runner.run(["mkfs.ext4", "-q", "-F", "-U", "6d0d3c1e-8d5c-4b8e-9f0a-3b8e2d2b1a10",
                    "-E", "hash_seed=6d0d3c1e-8d5c-4b8e-9f0a-3b8e2d2b1a10", "-d", str(tree),
                    str(raw), "8M"], env={"E2FSPROGS_FAKE_TIME": "1700000000",
                                          "PATH": "/usr/sbin:/sbin:/usr/bin:/bin"})
        raws.append(raw)
    lines = compare.disk_differences(*raws)
    assert lines[0].startswith("the whole disk (ext filesystem):")
    assert "  /etc/stamp (data)" in lines
    assert not any("/etc/same" in line for line in lines)


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-utils not installed")
def test_qcow2_of_the_same_disk_is_told_apart_from_a_different_disk(tmp_path):
    raw = tmp_path / "d.raw"
    raw.write_bytes(b"\x01" * 65536 + b"\x00" * 65536)
    plain, packed = tmp_path / "plain.qcow2", tmp_path / "packed.qcow2"
    runner.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(plain)])
    runner.run(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", str(raw),
                str(packed)])
    (line,) = compare.container_differences(plain, packed, "qcow2")
    assert line.startswith("the disk inside is the same")
    raw.write_bytes(b"\x02" * 65536 + b"\x00" * 65536)
    other = tmp_path / "other.qcow2"
    runner.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(other)])
    lines = compare.container_differences(plain, other, "qcow2")
    assert lines[0] == "the disk inside differs:"
    assert "the whole disk: 16 blocks of 4096 bytes differ" in lines[1]
