"""--check-reproducible's two builds and its verdict, with builds that
write known files (the comparison itself: test_compare_outputs.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dib.config.build import BuildConfig
from dib.errors import ConfigError
from dib.pipeline.reproducible import NotReproducible, check_reproducible


class Writer:
    """A build that writes NAME.tar, NAME.spdx.json and NAME.d/ at the image's
    place; ``stamp(n)`` gives the n-th build's varying file contents."""

    def __init__(self, stamp) -> None:
        self.stamp = stamp
        self.configs: list[BuildConfig] = []

    def __call__(self, config: BuildConfig) -> int:
        self.configs.append(config)
        image = Path(config.image_name)
        (image.parent / f"{image.name}.d").mkdir(exist_ok=True)
        (image.parent / f"{image.name}.d" / "dib-manifest").write_text("same\n")
        image.with_name(f"{image.name}.spdx.json").write_text('{"a": 1}')
        image.with_name(f"{image.name}.qcow2").write_text(self.stamp(len(self.configs)))
        Path(config.json_report).write_text(json.dumps({"outputs": [
            f"{config.image_name}.qcow2", f"{config.image_name}.spdx.json"]}))
        return 0


def _config(tmp_path: Path, **environ: str) -> BuildConfig:
    (tmp_path / "out").mkdir()
    return BuildConfig(image_name=str(tmp_path / "out" / "X"), workdir=str(tmp_path),
                       cache_dir=str(tmp_path / "warm"), image_cache=str(tmp_path / "dl"),
                       check_reproducible=True, environ=environ)


def test_identical_builds_pass_and_keep_the_first_builds_files(tmp_path):
    build = Writer(lambda n: "disk\n")
    config = _config(tmp_path, SOURCE_DATE_EPOCH="1700000000")
    assert check_reproducible(config, build) == 0
    first, second = build.configs
    assert first.cache_dir == str(tmp_path / "warm") and not first.check_reproducible
    # the second build: same output path, caches of its own
    assert second.image_name == first.image_name
    assert second.cache_dir != first.cache_dir and second.image_cache != first.image_cache
    assert second.environ["DIB_CACHE_DIR"] == second.cache_dir
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "X.d", "X.qcow2", "X.reproducible.txt", "X.spdx.json"]
    report = (out / "X.reproducible.txt").read_text()
    assert report.startswith("3 of 3 output files are identical")
    assert not list(tmp_path.glob("dib-reproducible-*"))      # the scratch is gone


def test_differing_builds_fail_naming_the_file_and_restore_the_first(tmp_path):
    build = Writer(lambda n: f"disk {n}\n")
    with pytest.raises(NotReproducible) as caught:
        check_reproducible(_config(tmp_path, SOURCE_DATE_EPOCH="1700000000"), build)
    assert "differ in 1 of 3 output files" in str(caught.value)
    out = tmp_path / "out"
    assert (out / "X.qcow2").read_text() == "disk 1\n"
    report = (out / "X.reproducible.txt").read_text()
    assert "DIFFERS X.qcow2" in report and "same    X.spdx.json" in report


def test_a_failed_second_build_leaves_the_first_builds_files(tmp_path):
    calls = []

    def build(config: BuildConfig) -> int:
        calls.append(config)
        image = Path(config.image_name)
        image.with_name("X.qcow2").write_text(f"build {len(calls)}\n")
        Path(config.json_report).write_text('{"outputs": []}')
        return 0 if len(calls) == 1 else 3
    assert check_reproducible(_config(tmp_path, SOURCE_DATE_EPOCH="1"), build) == 3
    assert (tmp_path / "out" / "X.qcow2").read_text() == "build 1\n"


def test_source_date_epoch_is_required(tmp_path):
    build = Writer(lambda n: "")
    with pytest.raises(ConfigError, match="needs SOURCE_DATE_EPOCH"):
        check_reproducible(_config(tmp_path), build)
    assert build.configs == []


def test_files_an_earlier_build_left_are_not_compared_and_stay(tmp_path):
    config = _config(tmp_path, SOURCE_DATE_EPOCH="1700000000")
    stale = tmp_path / "out" / "X.raw"
    stale.write_text("from a build with -t raw last week\n")
    assert check_reproducible(config, Writer(lambda n: "disk\n")) == 0
    assert stale.read_text() == "from a build with -t raw last week\n"
    report = (tmp_path / "out" / "X.reproducible.txt").read_text()
    assert "X.raw" not in report and report.startswith("3 of 3 output files are identical")
