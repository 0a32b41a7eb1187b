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
4. checks ``expect.yaml`` against the produced tree and, with ``--boot``,
   boots the image in qemu as its ``boot:`` key says (``dib.testing.boot``):
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
import difflib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from dib import runner
from dib.elements import ElementIndex, discover
from dib.elements.discovery import unknown_element
from dib.elements.model import Element
from dib.elements.resolve import OPERATING_SYSTEM
from dib.errors import DibError, ElementError
from dib.runtime.tree import path_in_layers

SENTINEL = "tmp/dib-test-should-fail"
OUTPUT_FORMATS_FILE = "test-output-formats"
DEFAULT_OS = "debian-minimal"
DEFAULT_HOOK_TIMEOUT = 600
DEFAULT_FORMATS = ("tar",)
TAIL_LINES = 25

PASS, FAIL, ERROR, SKIP = "pass", "fail", "error", "skip"


class CaseSelectionError(ElementError):
    """``dib test`` was asked for something that does not exist."""

    exit_code = 2


class CaseError(DibError):
    """A test-element cannot be built as given (broken metadata)."""


# -- discovery ---------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    element: str          # the element under test
    name: str             # the test-element's name
    path: Path            # .../<element>/test-elements/<name>
    element_path: Path    # .../<element>
    release: str = ""     # DIB_RELEASE for this run ('': whatever the environment says)

    @property
    def id(self) -> str:
        return f"{self.element}/{self.label}"

    @property
    def label(self) -> str:
        """The case's name in reports: with ``[release]`` when it has one."""
        return f"{self.name}[{self.release}]" if self.release else self.name

    @property
    def search_dir(self) -> Path:
        """The directory prepended to ELEMENTS_PATH for this case."""
        return self.path.parent


def _cases_of(element: Element) -> list[Case]:
    return [Case(element.name, name, path, element.path)
            for name, path in element.test_elements.items()]


def cases_of_elements(names: Sequence[str], index: ElementIndex) -> tuple[list[Case], list[str]]:
    """Every case of the named elements, and the names of those that have none."""
    cases: list[Case] = []
    without: list[str] = []
    for name in names:
        found = _cases_of(index[name])
        cases.extend(found)
        if not found:
            without.append(name)
    return cases, without


def cases_depending_on(names: Sequence[str], index: ElementIndex
                       ) -> list[tuple[Case, str]]:
    """Cases of the other elements whose own element-deps name one of ``names``
    (or a name one of them provides), each with the reason. A test-element is
    an element too: it builds whatever it lists, so a change there reaches it
    even when the element under test does not depend on it."""
    wanted = set(names)
    provided = {virtual: name for name in names if name in index
                for virtual in index[name].provides}
    found = []
    for element_name in index.names():
        if element_name in wanted:
            continue
        for case in _cases_of(index[element_name]):
            deps = Element(case.name, case.path).deps
            hit = next((d for d in deps if d in wanted or d in provided), None)
            if hit is None:
                continue
            via = hit if hit in wanted else provided[hit]
            through = "" if hit == via else f" (through '{hit}')"
            found.append((case, f"its test-element depends on {via}{through}"))
    return found


def discover_cases(targets: Sequence[str], index: ElementIndex, *, all_elements: bool = False
                   ) -> list[Case]:
    """``ELEMENT`` → all its cases; ``ELEMENT/CASE`` → that one; ``all_elements``
    → every element on the search path that has test-elements."""
    if all_elements:
        cases = [c for name in index.names() for c in _cases_of(index[name])]
        if not cases and not targets:
            raise CaseSelectionError("no element on the search path has test-elements",
                                 hint="add test-elements/<case>/ to an element, or put its "
                                      "directory on ELEMENTS_PATH")
    else:
        cases = []
    if not targets and not all_elements:
        raise CaseSelectionError("no element given", hint="name one or more elements "
                                                      "(ELEMENT or ELEMENT/CASE), or use --all")
    for target in targets:
        element_name, _, case_name = target.strip("/").partition("/")
        if element_name not in index:
            raise _usage(unknown_element(element_name, index.names()))
        element = index[element_name]
        available = _cases_of(element)
        if not available:
            raise CaseSelectionError(f"element '{element_name}' has no test-elements "
                                 f"({element.path / 'test-elements'} is missing or empty)",
                                 hint="add a case: test-elements/<case>/element-deps naming "
                                      f"'{element_name}'; or run its unit tests with --unit")
        if case_name:
            chosen = [c for c in available if c.name == case_name]
            if not chosen:
                names = [c.name for c in available]
                close = difflib.get_close_matches(case_name, names, n=3, cutoff=0.5)
                hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close
                        else f"its cases: {', '.join(names)}")
                raise CaseSelectionError(f"element '{element_name}' has no test-element "
                                     f"'{case_name}'", hint=hint)
            available = chosen
        cases.extend(available)
    return list(dict.fromkeys(cases))


_RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_releases(text: str) -> list[str]:
    """``--release bookworm,trixie`` → the releases, in order, each once."""
    words = [w for w in re.split(r"[\s,]+", text) if w]
    if not words:
        raise CaseSelectionError("--release names no release",
                                 hint="give one or more, separated by commas: "
                                      "--release bookworm,trixie")
    for word in words:
        if not _RELEASE_NAME.match(word):
            raise CaseSelectionError(f"--release: '{word}' is not a release name",
                                     hint="use the names DIB_RELEASE takes, such as "
                                          "bookworm or noble")
    return list(dict.fromkeys(words))


def with_releases(cases: Sequence[Case], releases: Sequence[str]) -> list[Case]:
    """Each case once per release (none given: the cases as they are)."""
    if not releases:
        return list(cases)
    return [replace(case, release=release) for case in cases for release in releases]


def _usage(exc: ElementError) -> CaseSelectionError:
    return CaseSelectionError(exc.message, hint=exc.hint)


def elements_for_unit(targets: Sequence[str], index: ElementIndex, *, all_elements: bool
                      ) -> list[Element]:
    names: list[str] = []
    if all_elements:
        names = [n for n in index.names() if index[n].tests_dir is not None]
    elif not targets:
        raise CaseSelectionError("no element given", hint="name one or more elements, or --all")
    for target in targets:
        name = target.strip("/").partition("/")[0]
        if name not in index:
            raise _usage(unknown_element(name, index.names()))
        names.append(name)
    return [index[n] for n in dict.fromkeys(names)]


# -- one case's inputs -------------------------------------------------------


def read_output_formats(case_dir: Path) -> tuple[str, ...]:
    """``test-output-formats``: output types, separated by spaces, commas or
    lines (``#`` starts a comment); default ``tar``."""
    path = case_dir / OUTPUT_FORMATS_FILE
    if not path.is_file():
        return DEFAULT_FORMATS
    words: list[str] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0]
        words.extend(w for w in re.split(r"[\s,]+", line) if w)
    if not words:
        raise CaseError(f"{path}: no output type listed",
                        hint="list output types such as 'tar' or 'qcow2', or remove the file")
    return tuple(dict.fromkeys(words))


def case_environ(case: Case, environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k != "break"}   # no interactive shells
    rest = env.get("ELEMENTS_PATH", "")
    env["ELEMENTS_PATH"] = str(case.search_dir) + (":" + rest if rest else "")
    if case.release:
        # The same variable a build reads from the environment; the
        # release reaches the phase cache's keys through it too.
        env["DIB_RELEASE"] = case.release
    return env


def provides_os(names: Sequence[str], index: ElementIndex) -> bool:
    """Whether the dependency closure of ``names`` provides an operating system
    (unknown names are left for the resolver to report)."""
    seen: set[str] = set()
    queue = list(names)
    while queue:
        name = queue.pop()
        if name in seen or name not in index:
            continue
        seen.add(name)
        element = index[name]
        if OPERATING_SYSTEM in element.provides:
            return True
        queue.extend(element.deps)
    return False


def case_elements(case: Case, index: ElementIndex, *, default_os: str = DEFAULT_OS,
                  boot: bool = False) -> list[str]:
    names = [case.element, case.name]
    if not provides_os(names, index):
        names.append(default_os)
    if boot and "vm" not in names:
        names.append("vm")
    return names


def check_case_metadata(case: Case, index: ElementIndex) -> dict[str, Any]:
    """Read everything the case declares; raise a DibError naming the file.
    Returns the parsed expectations."""
    from dib.testing.expect import load_expectations
    element = index.get(case.name) if case.name in index else Element(case.name, case.path)
    if element.path.resolve() != case.path.resolve():
        raise CaseError(f"test-element '{case.id}' is shadowed by the element "
                        f"'{case.name}' in {element.path}",
                        hint="give the test-element a name no other element uses")
    if not (case.path / "element-deps").is_file():
        raise CaseError(f"{case.path}/element-deps is missing",
                        hint=f"a test-element depends on the element under test: list "
                             f"'{case.element}' in it")
    element.load_all()
    read_output_formats(case.path)
    return load_expectations(case.path)


# -- results -----------------------------------------------------------------


@dataclass
class CaseResult:
    element: str
    case: str
    status: str                  # pass, fail, error, skip
    seconds: float = 0.0
    reason: str = ""             # one line
    details: str = ""            # hook error text, expectation failures, output tail
    hook: str = ""               # phase/hook that failed, when known
    expected_failure: bool = False
    kind: str = "functional"     # or "unit"
    log: str = ""                # kept log file, if any
    boot: dict[str, Any] | None = None
    release: str = ""            # DIB_RELEASE the case was built with, if --release set it
    started: float = 0.0         # wall clock (epoch seconds) when the case began
    # A failed case's whole log (build output, or the unit run's), for
    # reports that carry it (subunit); not part of the JSON report.
    output: str = field(default="", repr=False)

    @property
    def label(self) -> str:
        return f"{self.case}[{self.release}]" if self.release else self.case

    @property
    def id(self) -> str:
        return f"{self.element}/{self.label}"

    @property
    def ok(self) -> bool:
        return self.status in (PASS, SKIP)


# -- the sentinel --------------------------------------------------------------


def sentinel_in_layers(layers_top_first: Iterable[Path], sentinel: str = SENTINEL) -> bool:
    """Whether ``sentinel`` exists in the tree the overlay ``layers`` make."""
    return path_in_layers(layers_top_first, sentinel)


def failed_build_layers(workspace: Path, report: Mapping[str, Any] | None,
                        cache_dir: Path | None) -> list[Path]:
    """The layers of a failed build, top first: each step's layer from the
    phase cache if it is there, else from the workspace."""
    local: dict[str, list[Path]] = {}
    numbered = []
    for path in (workspace / "layers").glob("[0-9]*-*"):
        number, _, name = path.name.partition("-")
        if number.isdigit() and path.is_dir():
            numbered.append((int(number), name, path))
    for _number, name, path in sorted(numbered):
        local.setdefault(name, []).append(path)
    if not report or not report.get("steps"):
        return [p for _n, _name, p in sorted(numbered, reverse=True)]
    stack: list[Path] = []
    for step in report["steps"]:
        name, key = step.get("name", ""), step.get("key", "")
        cached = cache_dir / "phases" / "entries" / key / "layer" if cache_dir and key else None
        if cached is not None and cached.is_dir():
            stack.append(cached)
        elif local.get(name):
            stack.append(local[name].pop(0))
    return list(reversed(stack))


def tar_has_sentinel(tar_path: Path, sentinel: str = SENTINEL) -> bool:
    wanted = sentinel.strip("/")
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if member.name.lstrip("./").rstrip("/") == wanted or \
                    os.path.normpath(member.name).lstrip("/") == wanted:
                return True
    return False


def decide(build_status: int, *, sentinel_at_failure: bool, sentinel_in_output: bool
           ) -> tuple[str, str, bool]:
    """DIB's rule → (status, reason, expected_failure)."""
    if build_status == 0:
        if sentinel_in_output:
            return FAIL, f"the build should have failed but passed (/{SENTINEL} is in the " \
                         "image)", False
        return PASS, "", False
    if sentinel_at_failure:
        return PASS, "failed as expected", True
    return FAIL, "the build failed", False


# -- the build's error text ------------------------------------------------------

_ERROR_LINE = re.compile(r"^(?:dib|disk-image-create): error: (.*)$")
_HOOK_ERROR = re.compile(r"hook (?P<hook>\S+) of element '(?P<element>[^']*)' failed "
                         r"with exit status (?P<code>-?\d+)")
_TIMEOUT = re.compile(r"timed out after (?P<secs>[0-9.]+) s")


def error_from_log(text: str) -> tuple[str, str, str]:
    """(one-line reason, details, failing hook) from a build's captured output."""
    lines = text.splitlines()
    start = None
    for i in range(len(lines) - 1, -1, -1):
        if _ERROR_LINE.match(lines[i]):
            start = i
            break
    if start is None:
        tail = "\n".join(lines[-TAIL_LINES:])
        return "the build failed", tail, ""
    first = _ERROR_LINE.match(lines[start]).group(1)   # type: ignore[union-attr]
    details = "\n".join([first, *lines[start + 1:]]).rstrip()
    hook = ""
    match = _HOOK_ERROR.search(first)
    reason = first
    if match:
        hook = match.group("hook")
        timeout = _TIMEOUT.search(details)
        if timeout:
            secs = timeout.group("secs")
            secs = secs[:-2] if secs.endswith(".0") else secs
            reason = (f"hook {hook} of element '{match.group('element')}' timed out "
                      f"after {secs} s")
    return reason, details, hook


# -- running ---------------------------------------------------------------------


@dataclass
class Options:
    cache_dir: Path
    hook_timeout: int = DEFAULT_HOOK_TIMEOUT
    boot: bool = False
    no_cache: bool = False
    default_os: str = DEFAULT_OS
    log_dir: Path | None = None
    keep_output: bool = False
    verbose: bool = False
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
    from dib.testing.expect import boot_plan, check_boot

    environ = case_environ(case, options.environ)
    index = discover(environ)
    spec = check_case_metadata(case, index)
    formats = list(read_output_formats(case.path))
    boot = options.boot
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
        why, details, hook = error_from_log(log_text)
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
    if tar_path.exists() and tar_has_sentinel(tar_path):
        result.status, result.reason, _ = decide(0, sentinel_at_failure=False,
                                                 sentinel_in_output=True)
        return result
    if checks:
        failures = check_tar_expectations(tar_path, checks, scratch=work)
        if failures:
            result.reason = f"{len(failures)} expectation(s) not met: {failures[0]}"
            result.details = "\n".join(failures)
            return result
    if boot:
        from dib.testing.boot import boot as boot_image
        plan = boot_plan(spec, case.path)
        report = boot_image(plan.spec(out_dir / "image.qcow2", log_path=work / "boot.log"))
        result.boot = report.to_dict()
        failures = check_boot(report, plan)
        if failures:
            result.reason = f"boot: {failures[0]}"
            tail = "\n".join(report.tail.splitlines()[-15:])
            result.details = "\n".join(failures) + (f"\nlast console output:\n{tail}"
                                                    if tail else "")
            return result
    result.status = PASS
    return result


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


def check_tar_expectations(tar_path: Path, spec: Mapping[str, Any], *, scratch: Path
                           ) -> list[str]:
    """Extract the image tar and check ``spec`` against it."""
    from dib.testing.expect import check_expectations
    tree = Path(tempfile.mkdtemp(prefix="tree-", dir=scratch))
    try:
        argv = ["tar", "--numeric-owner", "-xf", str(tar_path), "-C", str(tree)]
        if os.geteuid() == 0:
            argv.insert(1, "-p")
        proc = runner.run(argv, check=False, what="tar extraction of the image")
        if proc.returncode != 0:
            return [f"cannot extract {tar_path.name}: {proc.stderr.strip()[-500:]}"]
        return check_expectations(tree, spec)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


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


def run_all(cases: Sequence[Case], options: Options,
            on_result: Callable[[CaseResult], None] | None = None, *, jobs: int = 1
            ) -> list[CaseResult]:
    """Run the cases, ``jobs`` at a time (each then in a process of its own,
    see ``dib.testing.parallel``); results in the order of ``cases``."""
    if jobs > 1 and len(cases) > 1:
        from dib.testing.parallel import BuildJob, run_jobs
        return run_jobs([BuildJob(case, options) for case in cases], jobs,
                        on_result=on_result)
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


# -- reporting ---------------------------------------------------------------------


def format_text(results: Sequence[CaseResult], *, tail_lines: int = TAIL_LINES) -> str:
    rows = [(r.id, r.status.upper(), f"{r.seconds:.1f}", r.reason) for r in results]
    widths = [max([len(h)] + [len(row[i]) for row in rows])
              for i, h in enumerate(("case", "result", "seconds"))]
    lines = [f"{'case':<{widths[0]}}  {'result':<{widths[1]}}  {'seconds':>{widths[2]}}  reason"]
    lines.append("  ".join("-" * w for w in widths) + "  ------")
    for case, status, secs, reason in rows:
        lines.append(f"{case:<{widths[0]}}  {status:<{widths[1]}}  {secs:>{widths[2]}}  "
                     f"{reason}".rstrip())
    failed = [r for r in results if not r.ok]
    for r in failed:
        if r.details:
            lines.append("")
            lines.append(f"--- {r.id}: {r.status.upper()}" + (f" in {r.hook}" if r.hook else ""))
            detail = r.details.splitlines()
            lines.extend(detail[-tail_lines:] if len(detail) > tail_lines else detail)
            if r.log:
                lines.append(f"(full log: {r.log})")
    counts = summary(results)
    lines.append("")
    lines.append(f"{counts['total']} case(s): {counts['passed']} passed, {counts['failed']} "
                 f"failed, {counts['errors']} error(s), {counts['skipped']} skipped "
                 f"({counts['seconds']:.1f} s)")
    return "\n".join(lines) + "\n"


def summary(results: Sequence[CaseResult]) -> dict[str, Any]:
    return {"total": len(results),
            "passed": sum(r.status == PASS for r in results),
            "failed": sum(r.status == FAIL for r in results),
            "errors": sum(r.status == ERROR for r in results),
            "skipped": sum(r.status == SKIP for r in results),
            "seconds": round(sum(r.seconds for r in results), 2)}


def format_json(results: Sequence[CaseResult]) -> str:
    data = {"summary": summary(results),
            "results": [_json_result(r) for r in results]}
    return json.dumps(data, indent=1) + "\n"


def _json_result(r: CaseResult) -> dict[str, Any]:
    data = dict(asdict(r), id=r.id, seconds=round(r.seconds, 2), started=round(r.started, 3))
    del data["output"]     # the log file (--log-dir) has it
    return data


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_text(text: str) -> str:
    return _XML_BAD.sub("?", text)


def format_junit(results: Sequence[CaseResult], *, tail_lines: int = 60) -> str:
    """JUnit XML: one testsuite per element, one testcase per case."""
    suites = ET.Element("testsuites", name="dib test")
    by_element: dict[str, list[CaseResult]] = {}
    for r in results:
        by_element.setdefault(r.element, []).append(r)
    totals = summary(results)
    suites.set("tests", str(totals["total"]))
    suites.set("failures", str(totals["failed"]))
    suites.set("errors", str(totals["errors"]))
    suites.set("skipped", str(totals["skipped"]))
    suites.set("time", f"{totals['seconds']:.3f}")
    for element, items in by_element.items():
        counts = summary(items)
        suite = ET.SubElement(suites, "testsuite", name=element, tests=str(counts["total"]),
                              failures=str(counts["failed"]), errors=str(counts["errors"]),
                              skipped=str(counts["skipped"]), time=f"{counts['seconds']:.3f}")
        for r in items:
            case = ET.SubElement(suite, "testcase", name=r.label, classname=f"{r.kind}.{element}",
                                 time=f"{r.seconds:.3f}")
            if r.log:
                ET.SubElement(case, "properties").append(
                    ET.Element("property", name="log", value=r.log))
            if r.status in (FAIL, ERROR):
                tag = "failure" if r.status == FAIL else "error"
                message = r.reason + (f" [{r.hook}]" if r.hook and r.hook not in r.reason else "")
                node = ET.SubElement(case, tag, message=_xml_text(message),
                                     type=r.hook or r.status)
                detail = r.details.splitlines()[-tail_lines:]
                node.text = _xml_text("\n".join(detail))
            elif r.status == SKIP:
                ET.SubElement(case, "skipped", message=_xml_text(r.reason))
            elif r.reason:
                out = ET.SubElement(case, "system-out")
                out.text = _xml_text(r.reason)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"
