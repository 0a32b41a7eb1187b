"""``--check-reproducible``: build twice, compare the outputs.

The first build is the usual one (warm caches welcome). Its outputs are
then moved aside and the second build runs at the same place (the output
path is recorded in the image's manifests) from scratch: a fresh phase cache
and image cache in a temporary directory, no remote cache. The second
build's files are compared with the first's (``dib.outputs.compare``), the
first build's are put back, and the report is logged and written beside the
image as NAME.reproducible.txt.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
from pathlib import Path

from dib import runner
from dib.config.build import BuildConfig
from dib.errors import ConfigError, DibError
from dib.outputs import compare
from dib.sbom import check_source_date_epoch

LOG = logging.getLogger("dib.build")
DISK_SUFFIXES = (".raw", *compare.CONTAINERS)
#: diffoscope reads archives and disk images member by member: slow on big ones
DIFFOSCOPE_TIMEOUT = 900


class NotReproducible(DibError):
    """The two builds' outputs differ; the report says where."""


def check_reproducible(config: BuildConfig, build_one) -> int:
    """Both builds through ``build_one`` (a BuildConfig → exit status),
    then the comparison. Returns 0 when every output file is identical."""
    epoch = _required_epoch(config)
    image = Path(config.image_name).absolute()
    with tempfile.TemporaryDirectory(prefix="dib-reproducible-", dir=config.workdir) as tmp:
        scratch = Path(tmp)
        # the first build's report names its outputs, so that files an
        # earlier build left beside the image are not taken for them
        report_path = Path(config.json_report) if config.json_report else scratch / "first.json"
        first_config = dataclasses.replace(config, check_reproducible=False,
                                           json_report=str(report_path))
        LOG.info("reproducibility check: first build (SOURCE_DATE_EPOCH=%s)", epoch)
        status = build_one(first_config)
        if status != 0:
            return status
        first_names = _first_outputs(report_path, image)
        first_dir, second_dir = scratch / "first", scratch / "second"
        _move_outputs(image, first_dir)
        try:
            LOG.info("reproducibility check: second build, with a fresh phase cache "
                     "and image cache in %s", scratch)
            status = build_one(_second_config(first_config, scratch))
            _move_outputs(image, second_dir)
        finally:
            _remove_outputs(image)
            _move_back(first_dir, image.parent)
        if status != 0:
            return status
        results = compare.compare_files(
            {name: image.parent / name for name in first_names},
            compare.output_files(second_dir, image.name))
        text = compare.report_text(results)
        differ = [r for r in results if not r.same]
        if differ:
            text += _diffoscope(differ, image.parent, second_dir)
    report = image.with_name(image.name + compare.REPORT_SUFFIX)
    report.write_text(text)
    for line in text.splitlines():
        LOG.info("%s", line)
    if differ:
        raise NotReproducible(
            f"the two builds differ in {len(differ)} of {len(results)} output files",
            hint=f"the report above (also in {report}) names what differs inside each; "
                 "see docs/reproducible.md for the usual causes")
    LOG.info("reproducibility check: all %d output files are identical", len(results))
    return 0


def _required_epoch(config: BuildConfig) -> str:
    value = check_source_date_epoch(config.environ.get("SOURCE_DATE_EPOCH"))
    if value is None:
        raise ConfigError("--check-reproducible needs SOURCE_DATE_EPOCH",
                          hint="set it to a fixed time, for example that of your last "
                               "commit: SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)")
    return value


def _first_outputs(report_path: Path, image: Path) -> list[str]:
    """The files the first build wrote beside the image (relative names):
    those its report lists, and what NAME.d/ holds."""
    outputs = json.loads(report_path.read_text()).get("outputs", [])
    names = {Path(p).name for p in outputs}
    names.update(name for name in compare.output_files(image.parent, image.name)
                 if Path(name).parts[0] == f"{image.name}.d")
    return sorted(n for n in names if (image.parent / n).is_file())


def _second_config(config: BuildConfig, scratch: Path) -> BuildConfig:
    """The same build with nothing to reuse: its own phase and image caches."""
    cache_dir, image_cache = scratch / "phase-cache", scratch / "image-cache"
    environ = dict(config.environ, DIB_CACHE_DIR=str(cache_dir),
                   DIB_IMAGE_CACHE=str(image_cache))
    return dataclasses.replace(config, cache_dir=str(cache_dir), image_cache=str(image_cache),
                               no_cache=False, cache_remote=None,
                               json_report=str(scratch / "second.json"), environ=environ)


def _move_outputs(image: Path, destination: Path) -> None:
    """Move everything named after ``image`` (NAME.*, NAME.d/) into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    for entry in _output_entries(image):
        shutil.move(str(entry), destination / entry.name)


def _output_entries(image: Path) -> list[Path]:
    return sorted(p for p in image.parent.iterdir()
                  if p.name.startswith(f"{image.name}.") and
                  not p.name.endswith(compare.REPORT_SUFFIX))


def _remove_outputs(image: Path) -> None:
    """What an interrupted second build left at the image's place."""
    for entry in _output_entries(image):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _move_back(source: Path, directory: Path) -> None:
    if source.is_dir():
        for entry in sorted(source.iterdir()):
            shutil.move(str(entry), directory / entry.name)


def _diffoscope(differ: list[compare.FileComparison], first: Path, second: Path) -> str:
    """diffoscope's report on the files that differ, when it is installed."""
    if runner.which("diffoscope") is None:
        return ""
    text = []
    for result in differ:
        if result.first is None or result.second is None or \
                Path(result.name).suffix in DISK_SUFFIXES:
            continue   # disk images: our own report above reads them much faster
        try:
            found = runner.run(["diffoscope", "--text", "-", "--no-progress",
                                str(first / result.name), str(second / result.name)],
                               check=False, timeout=DIFFOSCOPE_TIMEOUT, own_group=True,
                               what=f"diffoscope of {result.name}")
            body = found.stdout
        except runner.CommandTimeout:
            body = f"(stopped after {DIFFOSCOPE_TIMEOUT} s)\n"
        text.append(f"\ndiffoscope {result.name}:\n{body}")
    return "".join(text)
