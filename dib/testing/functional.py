"""``dib test``: run elements' functional tests (their ``test-elements/``).

A *case* is ``elements/<element>/test-elements/<case>/``: an ordinary
element built on top of the element under test, as in DIB. For each case
the harness:

1. checks the case's metadata (element-deps and friends, ``expect.yaml``,
   ``test-output-formats``) and resolves ``[element, case]`` with the case's
   directory first on ``ELEMENTS_PATH``; when nothing in the resolution
   provides ``operating-system``, ``debian-minimal`` is added (DIB passes the
   OS through the case's element-deps; that still works);
2. builds it through the real pipeline (``dib.pipeline.prepare`` and
   ``dib.pipeline.build.build``, ``skip_base`` as DIB's functests, a per-hook
   timeout, the build's output captured in a per-case log), sharing the phase
   cache with every other build, so whatever a case has in common with an
   earlier build is restored, not rebuilt;
3. decides the result DIB's way: a failed build passes only if the target
   had ``/tmp/dib-test-should-fail`` when it failed; a build that succeeds
   but still ships the sentinel fails;
4. checks ``expect.yaml`` against the produced tree and, when it has a
   ``boot:`` key (or with ``--boot``), boots the image in qemu as that key says (``dib.testing.boot``):
   waits for the marker, runs the ``exec`` commands in the guest and
   compares their exit status and output (``dib.testing.expect.check_boot``).

How the sentinel is found after a failure: the case is built with
``keep_workspace`` and a JSON report. The report lists the build's steps with
their cache keys; each step's layer is either in the phase cache (stored or
reused) or still in the workspace (the failing phase's upper directory is
kept there). The harness looks for the sentinel through that stack of
overlay layers, top first (honouring whiteouts and opaque directories), then
removes the workspace itself.

The case's image, workspace and log live in a directory of their own under
``CACHE_DIR/tests/<element>/<case>/`` (locked while the case runs, emptied
afterwards). The path is stable on purpose: the image's path reaches the
phase cache's keys (``DIB_MANIFEST_SAVE_DIR``), so a path that changed on
every run would make every run cold.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from dib import runner
from dib.elements import discover
from dib.elements.model import Element
from dib.errors import DibError
# The harness's public face: cases, verdicts and results are defined in
# their own modules and used from here.
from dib.testing.cases import (DEFAULT_FORMATS, DEFAULT_OS, OUTPUT_FORMATS_FILE,
                               Case, CaseError, CaseSelectionError, case_elements,
                               case_environ, cases_depending_on, cases_of_elements,
                               check_case_metadata, discover_cases, elements_for_unit,
                               parse_releases, provides_os, read_output_formats,
                               with_releases)
from dib.testing.imagetree import TarTree
from dib.testing.results import (ERROR, FAIL, PASS, SKIP, TAIL_LINES, CaseResult,
                                 format_json, format_junit, format_text, summary)
from dib.testing.verdict import (SENTINEL, decide, explain_failure,
                                 failed_build_layers, sentinel_in_layers, tar_has_sentinel)

__all__ = [
    "DEFAULT_FORMATS", "DEFAULT_HOOK_TIMEOUT", "DEFAULT_OS", "ERROR", "FAIL",
    "OUTPUT_FORMATS_FILE", "PASS", "SENTINEL", "SKIP", "TAIL_LINES", "Case", "CaseError",
    "CaseResult", "CaseSelectionError", "Options", "case_dir_for", "case_elements",
    "case_environ", "cases_depending_on", "cases_of_elements", "check_case_metadata",
    "decide", "discover_cases", "elements_for_unit",
    "explain_failure", "failed_build_layers", "format_json", "format_junit", "format_text",
    "parse_releases", "provides_os", "read_output_formats", "run_all", "run_case",
    "run_unit", "run_units", "sentinel_in_layers", "summary", "tar_has_sentinel",
    "with_releases",
]

DEFAULT_HOOK_TIMEOUT = 600


@dataclass
class Options:
    cache_dir: Path
    hook_timeout: int = DEFAULT_HOOK_TIMEOUT
    #: True: boot every case; False: none; None: the cases whose expect.yaml
    #: has a ``boot:`` key (their author asked for it)
    boot: bool | None = None
    no_cache: bool = False
    #: the phase cache's size after each case's build (None: the registry's default)
    cache_max_size: int | None = None
    default_os: str = DEFAULT_OS
    log_dir: Path | None = None
    keep_output: bool = False
    verbose: bool = False
    #: False: boot every booted case again, even one whose image and checks
    #: passed before (``boot_passes``)
    reuse_boots: bool = True
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@contextlib.contextmanager
def _locked_dir(path: Path) -> Iterator[Path]:
    """An emptied directory of our own, exclusively locked while in use."""
    path.mkdir(parents=True, exist_ok=True)
    lock = open(path.parent / f".{path.name}.lock", "w")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DibError(f"another 'dib test' is running this case ({path})",
                           hint="wait for it to finish") from None
        _empty(path)
        yield path
    finally:
        lock.close()


def _empty(path: Path) -> None:
    from dib.runtime.workspace import PREFIX, Workspace
    for child in path.iterdir():
        if child.name.startswith(".") and child.suffix == ".lock":
            continue
        if child.is_dir() and not child.is_symlink():
            for ws in child.glob(PREFIX + "*"):
                Workspace(ws).remove()
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@contextlib.contextmanager
def _output_to(log_path: Path, *, echo: bool = False) -> Iterator[None]:
    """Send this process's (and its children's) stdout and stderr to a file,
    and with ``echo`` also to the original stderr."""
    import threading
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    reader = writer = -1
    thread = None
    if echo:
        reader, writer = os.pipe()

        def pump() -> None:
            while True:
                chunk = os.read(reader, 65536)
                if not chunk:
                    return
                os.write(log_fd, chunk)
                os.write(saved[1], chunk)
        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
    try:
        os.dup2(writer if echo else log_fd, 1)
        os.dup2(writer if echo else log_fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        if thread is not None:
            os.close(writer)
            thread.join(timeout=10)
            os.close(reader)
        for fd in (log_fd, *saved):
            os.close(fd)


def case_dir_for(case: Case, cache_dir: Path) -> Path:
    # One directory per release too, so that two releases of a case can
    # run at the same time and each keeps a stable path.
    name = f"{case.name}@{case.release}" if case.release else case.name
    return Path(cache_dir) / "tests" / case.element / name


def run_case(case: Case, options: Options) -> CaseResult:
    """Build one case and judge it; never leaves a workspace or mount behind."""
    started, wall = time.monotonic(), time.time()
    with _locked_dir(case_dir_for(case, options.cache_dir)) as work:
        log_path = work / "build.log"
        result: CaseResult | None = None
        try:
            try:
                result = _run_case(case, options, work, log_path)
            except DibError as exc:
                result = CaseResult(case.element, case.name, ERROR, release=case.release,
                                    reason=exc.message.splitlines()[0], details=str(exc))
        finally:
            kept = _keep_log(case, options, log_path)
            if result is not None and not result.ok:
                result.output = _read_tail(log_path)
            if not options.keep_output:
                _empty(work)
        result.log = kept
        result.seconds = time.monotonic() - started
        result.started = wall
    return result


MAX_OUTPUT = 8 * 1024 * 1024


def _read_tail(path: Path, limit: int = MAX_OUTPUT) -> str:
    """A log's text, its last ``limit`` bytes when it is longer (a runaway
    hook must not fill memory)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - limit))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode(errors="replace")
    return text if size <= limit else f"(first {size - limit} bytes left out)\n" + text


def _keep_log(case: Case, options: Options, log_path: Path) -> str:
    if options.log_dir is None or not log_path.exists():
        return ""
    options.log_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"@{case.release}" if case.release else ""
    target = options.log_dir / f"{case.element}--{case.name}{suffix}.log"
    shutil.copyfile(log_path, target)
    return str(target)


def _run_case(case: Case, options: Options, work: Path, log_path: Path) -> CaseResult:
    from dib.config.build import load_build_config
    from dib.testing.expect import boot_plan

    environ = case_environ(case, options.environ)
    index = discover(environ)
    spec = check_case_metadata(case, index)
    formats = list(read_output_formats(case.path))
    boot = options.boot if options.boot is not None else "boot" in spec
    checks = {k: v for k, v in spec.items() if k != "boot"}
    if checks and "tar" not in formats:
        formats.append("tar")
    if boot and "qcow2" not in formats:
        formats.append("qcow2")
    names = case_elements(case, index, default_os=options.default_os, boot=boot)
    out_dir, workdir = work / "out", work / "work"
    out_dir.mkdir()
    workdir.mkdir()
    report_path = work / "report.json"
    cli_values = {
        "image_name": str(out_dir / "image"), "image_types": tuple(formats),
        "skip_base": True, "workdir": str(workdir), "keep_workspace": True,
        "json_report": str(report_path), "hook_timeout": options.hook_timeout,
        "cache_dir": str(options.cache_dir), "no_cache": options.no_cache or None,
        "cache_max_size": options.cache_max_size,
        "break_points": (), "dry_run": None,
        # Test builds write no SBOM (reading the tree costs about a second per
        # case) unless DIB_SBOM asks for one.
        "sbom": None if environ.get("DIB_SBOM") else (),
    }
    config = load_build_config(cli_values, elements=names, environ=environ,
                               argv=["dib", "test", case.id])
    result = CaseResult(case.element, case.name, FAIL, release=case.release)
    with _output_to(log_path, echo=options.verbose):
        status = _build(_prepare(config))
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    if status != 0:
        workspaces = sorted(workdir.glob("dib-build-*"))
        report = _read_json(report_path)
        at_failure = any(sentinel_in_layers(failed_build_layers(ws, report, options.cache_dir))
                         for ws in workspaces)
        _remove_workspaces(workdir)
        status_word, reason, expected = decide(status, sentinel_at_failure=at_failure,
                                               sentinel_in_output=False)
        result.status, result.expected_failure = status_word, expected
        why, details, hook = explain_failure(report, log_text,
                                             hook_timeout=options.hook_timeout)
        result.hook = hook
        if expected:
            result.reason = f"failed as expected ({why})"
        else:
            result.reason, result.details = why, details
        return result
    _remove_workspaces(workdir)
    tar_path = out_dir / "image.tar"
    for fmt in formats:
        produced = out_dir / f"image.{fmt}"
        if fmt in ("tar", "qcow2", "raw", "vhd", "tgz", "squashfs") and \
                not produced.exists() and not list(out_dir.glob(f"image*.{fmt}")):
            result.reason = f"the build succeeded but wrote no image.{fmt}"
            return result
    if tar_path.exists():
        failures = _check_tar(tar_path, checks)
        if failures is None:
            result.status, result.reason, _ = decide(0, sentinel_at_failure=False,
                                                     sentinel_in_output=True)
            return result
        if failures:
            result.reason = f"{len(failures)} expectation(s) not met: {failures[0]}"
            result.details = "\n".join(failures)
            return result
    if boot:
        plan = boot_plan(spec, case.path)
        result.boot, failures, tail = _boot_case(case, plan, out_dir / "image.qcow2",
                                                 _outputs_key(report_path), work, options)
        if failures:
            result.reason = f"boot: {failures[0]}"
            tail = "\n".join(tail.splitlines()[-15:])
            result.details = "\n".join(failures) + (f"\nlast console output:\n{tail}"
                                                    if tail else "")
            return result
        if result.boot.get("reused_from"):
            result.reason = (f"boot not repeated: this image passed these checks at "
                             f"{result.boot['reused_from']}")
    result.status = PASS
    return result


def _outputs_key(report_path: Path) -> str:
    """The key of the build's ``outputs`` step: what its images are made of."""
    report = _read_json(report_path) or {}
    return next((step.get("key") or "" for step in report.get("steps", [])
                 if step.get("name") == "outputs"), "")


def _boot_case(case: Case, plan: Any, image: Path, image_key: str, work: Path,
               options: Options) -> tuple[dict[str, Any], list[str], str]:
    """Boot the case's image and check it, unless an image made of the same
    inputs (``image_key``) passed the same checks before (``boot_passes``):
    the boot report, the failures, the console's tail."""
    from dib.testing.boot import boot as boot_image
    from dib.testing.boot_passes import BootPasses, pass_key
    from dib.testing.expect import check_boot

    passes = BootPasses(options.cache_dir / "boots")
    reuse = options.reuse_boots and not options.no_cache and bool(image_key)
    key = pass_key(image_key, case.path, repr(plan)) if reuse else ""
    kept = passes.recall(key) if key else None
    if kept is not None:
        return kept, [], ""
    report = boot_image(plan.spec(image, log_path=work / "boot.log"))
    failures = check_boot(report, plan)
    if key and not failures:
        passes.remember(key, report.to_dict())
    return report.to_dict(), failures, report.tail


def _prepare(config: Any) -> Any:
    """Everything that can fail before slow work (dib.pipeline.prepare)."""
    import importlib
    return importlib.import_module("dib.pipeline.prepare").prepare(config)


def _build(prepared: Any) -> int:
    """The build proper, in its private mount namespace (dib.pipeline.build)."""
    import importlib
    return importlib.import_module("dib.pipeline.build").build(prepared)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _remove_workspaces(workdir: Path) -> None:
    from dib.runtime.workspace import Workspace
    for ws in workdir.glob("dib-build-*"):
        Workspace(ws).remove()


def _check_tar(tar_path: Path, checks: Mapping[str, Any]) -> list[str] | None:
    """The image tar read in place: None when it still holds DIB's
    should-fail sentinel, else the expectations it does not meet."""
    from dib.testing.expect import check_expectations
    with TarTree(tar_path) as image:
        if image.lexists(SENTINEL):
            return None
        return check_expectations(image, checks) if checks else []


def run_unit(element: Element, *, log_dir: Path | None = None,
             python: str = sys.executable) -> CaseResult:
    """``python -m pytest`` on the element's ``tests/``."""
    started = time.monotonic()
    result = CaseResult(element.name, "unit", SKIP, kind="unit", started=time.time())
    tests = element.tests_dir
    if tests is None:
        result.reason = f"no tests/ directory in {element.path}"
        return result
    proc = runner.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                      check=False, cwd=element.path, stdin=subprocess.DEVNULL,
                      what=f"{element.name}'s hook unit tests")
    output = proc.stdout + proc.stderr
    result.seconds = time.monotonic() - started
    last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
    if proc.returncode == 0:
        result.status, result.reason = PASS, last.strip("= ")
    elif proc.returncode == 5:
        result.status, result.reason = SKIP, "no tests collected"
    else:
        result.status = FAIL
        result.reason = last.strip("= ") or f"pytest exited with status {proc.returncode}"
        result.details = "\n".join(output.splitlines()[-60:])
        result.output = output
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        target = log_dir / f"{element.name}--unit.log"
        target.write_text(output)
        result.log = str(target)
    return result


def _boots(case: Case, options: Options) -> bool:
    if options.boot is not None:
        return options.boot
    from dib.testing.expect import load_expectations
    try:
        return "boot" in load_expectations(case.path)
    except DibError:
        return False   # the case's own run reports the bad file


def run_all(cases: Sequence[Case], options: Options,
            on_result: Callable[[CaseResult], None] | None = None, *, jobs: int = 1
            ) -> list[CaseResult]:
    """Run the cases, ``jobs`` at a time (each then in a process of its own,
    see ``dib.testing.parallel``); results in the order of ``cases``."""
    if jobs > 1 and len(cases) > 1:
        from dib.testing.parallel import BuildJob, run_jobs
        # The booted cases are the long ones: started first, they do not
        # leave one worker busy alone at the end.
        booted = [i for i, case in enumerate(cases) if _boots(case, options)]
        first = booted + [i for i in range(len(cases)) if i not in booted]
        return run_jobs([BuildJob(case, options) for case in cases], jobs,
                        on_result=on_result, start_order=first)
    results = []
    for case in cases:
        result = run_case(case, options)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def run_units(elements: Sequence[Element], *, log_dir: Path | None = None,
              on_result: Callable[[CaseResult], None] | None = None, jobs: int = 1
              ) -> list[CaseResult]:
    """``run_unit`` for each element, ``jobs`` at a time; results in order."""
    if jobs > 1 and len(elements) > 1:
        from dib.testing.parallel import UnitJob, run_jobs
        return run_jobs([UnitJob(e.name, e.path, log_dir) for e in elements], jobs,
                        on_result=on_result)
    results = []
    for element in elements:
        result = run_unit(element, log_dir=log_dir)
        results.append(result)
        if on_result:
            on_result(result)
    return results
