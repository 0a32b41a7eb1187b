"""``dib test``: run elements' functional tests (test-elements) or unit tests."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator, Mapping, TextIO

from dib.config.cli import add_build_arguments
from dib.errors import ConfigError

if TYPE_CHECKING:
    from dib.elements import ElementIndex
    from dib.testing.changes import Selection
    from dib.testing.functional import Case

DESCRIPTION = (
    "Build each test-element of the given elements (ELEMENT for all its cases, "
    "ELEMENT/CASE for one) through the real pipeline, on the shared phase cache, and "
    "check the result: a case passes when its build succeeds, or when it fails after "
    "creating /tmp/dib-test-should-fail in the target (DIB's convention); expect.yaml "
    "is checked against the built tree, and a case whose expect.yaml has a boot: key is "
    "booted in qemu and checked in the guest (--boot: every case; --no-boot: none). "
    "--unit runs "
    "the elements' own tests/ with pytest instead. --changed picks the elements a git "
    "change touches and those depending on them. A case's hook that runs longer than "
    "600 s is stopped unless --hook-timeout or DIB_HOOK_TIMEOUT says otherwise. Exit "
    "status: 0 all passed, 1 a case failed, 2 bad usage.")


#: build settings a test case takes from the command line or the environment
CASE_SETTINGS = ("hook_timeout", "cache_dir", "no_cache", "cache_max_size")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("test", help="run elements' functional (or unit) tests",
                                   description=DESCRIPTION)
    parser.add_argument("targets", nargs="*", metavar="ELEMENT[/CASE]",
                        help="element, or element/test-element")
    parser.add_argument("--all", action="store_true", dest="all_elements",
                        help="every element on the search path that has test-elements "
                             "(with --unit: that has tests/)")
    parser.add_argument("--unit", action="store_true",
                        help="run each element's tests/ with pytest instead of building")
    booting = parser.add_mutually_exclusive_group()
    booting.add_argument("--boot", action="store_true", default=None,
                         help="boot every case, not only those whose expect.yaml has a "
                              "boot: key: build a qcow2 (adding 'vm'), boot it in qemu, "
                              "wait for the marker (default 'login:'), run the exec checks "
                              "in the guest")
    booting.add_argument("--no-boot", action="store_false", dest="boot",
                         help="boot no case, not even those whose expect.yaml asks for it")
    parser.add_argument("--rerun-boots", action="store_false", dest="reuse_boots",
                        help="boot a case again even when an image made of the same "
                             "inputs passed the same boot checks before (by default such a "
                             "pass is reported, not repeated)")
    parser.add_argument("--changed", nargs="?", const="", default=None, metavar="REF",
                        help="instead of naming elements: those whose files changed since "
                             "REF (default: the merge base of HEAD with the default branch; "
                             "staged, unstaged and untracked changes count) and every "
                             "element that depends on them; says why each was chosen")
    parser.add_argument("--release", metavar="R1,R2",
                        help="run each case once per release, with DIB_RELEASE set to it; "
                             "reported as ELEMENT/CASE[RELEASE]")
    parser.add_argument("--list", action="store_true", dest="list_only",
                        help="print the selected cases (with --unit: elements) and exit")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML results here")
    parser.add_argument("--json", metavar="FILE", dest="json_file",
                        help="write JSON results here ('-' for stdout)")
    parser.add_argument("--subunit", metavar="FILE", dest="subunit_file",
                        help="write a subunit v2 stream of the results here, for stestr, "
                             "subunit-trace or subunit2html ('-' for stdout; the text "
                             "report then goes to stderr)")
    parser.add_argument("-j", "--jobs", type=_jobs, default=None, metavar="N",
                        help="run N cases at once, each in a process of its own (default: "
                             "the number of CPUs); results still come in the order the "
                             "cases are listed; -j 1 runs them one by one in this process")
    # the build settings a case honours, declared once in the settings registry
    add_build_arguments(parser, only=CASE_SETTINGS)
    parser.add_argument("--os", dest="default_os", default=None, metavar="ELEMENT",
                        help="operating-system element added to cases that do not pull "
                             "one in (default debian-minimal)")
    parser.add_argument("--log-dir", metavar="DIR",
                        help="keep each case's build log here")
    parser.add_argument("--keep-output", action="store_true",
                        help="keep each case's image under CACHE_DIR/tests/ELEMENT/CASE/out")
    parser.add_argument("--show-log", action="store_true",
                        help="show the builds' output as they run")
    parser.set_defaults(handler=main)


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def case_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """CASE_SETTINGS' values: the flag's, else the environment's, else the
    registry's default, except that a test run stops a hung hook after
    DEFAULT_HOOK_TIMEOUT where a build would wait for ever."""
    from dib.config.build import resolve_setting
    from dib.config.settings import by_name
    from dib.testing.functional import DEFAULT_HOOK_TIMEOUT

    if not environ.get("DIB_HOOK_TIMEOUT"):
        environ = {**environ, "DIB_HOOK_TIMEOUT": str(DEFAULT_HOOK_TIMEOUT)}
    return {name: resolve_setting(by_name(name), getattr(args, name), environ)
            for name in CASE_SETTINGS}


def main(args: argparse.Namespace) -> int:
    from dib.elements import discover
    from dib.testing import functional as ft

    if args.subunit_file == "-" and args.json_file == "-":
        raise ConfigError("--subunit and --json cannot both write to stdout",
                          hint="give one of them a file name")
    environ = dict(os.environ)
    index = discover(environ)
    jobs = args.jobs or os.cpu_count() or 1
    run: Callable[[], list[ft.CaseResult]]

    def progress(result: ft.CaseResult) -> None:
        note = f"  {result.reason}" if result.reason else ""
        print(f"{result.status.upper():<5} {result.id} ({result.seconds:.1f} s){note}",
              file=sys.stderr, flush=True)

    log_dir = Path(args.log_dir) if args.log_dir else None
    releases = ft.parse_releases(args.release) if args.release is not None else []
    if releases and args.unit:
        raise ft.CaseSelectionError("--release sets DIB_RELEASE for builds; --unit builds "
                                    "nothing", hint="drop --release, or drop --unit")
    changed = _changed(args, index) if args.changed is not None else None
    if changed is not None and not changed.names and not changed.deleted:
        print("dib test: no element changed: nothing to test", file=sys.stderr)
        return 0
    if args.unit:
        if changed is None:
            chosen = ft.elements_for_unit(args.targets, index, all_elements=args.all_elements)
        else:
            chosen = [index[n] for n in changed.names if index[n].tests_dir is not None]
            _note_without("tests/", [n for n in changed.names if index[n].tests_dir is None])
        if not chosen:
            where = "on the search path" if changed is None else "selected"
            print(f"dib test: no element {where} has a tests/ directory", file=sys.stderr)
        if args.list_only:
            print("".join(f"{e.name}/unit\n" for e in chosen), end="")
            return 0
        def run() -> list[ft.CaseResult]:
            return ft.run_units(chosen, log_dir=log_dir, on_result=progress, jobs=jobs)
    else:
        if changed is None:
            cases = ft.discover_cases(args.targets, index, all_elements=args.all_elements)
        else:
            cases, without = ft.cases_of_elements(changed.names, index)
            cases.extend(_cases_using(changed.affected, index))
            _note_without("test-elements/", without)
        cases = ft.with_releases(cases, releases)
        if args.list_only:
            print("".join(f"{case.id}\n" for case in cases), end="")
            return 0
        value = case_settings(args, environ)
        options = ft.Options(cache_dir=Path(value["cache_dir"]),
                             hook_timeout=value["hook_timeout"], boot=args.boot,
                             no_cache=bool(value["no_cache"]),
                             cache_max_size=value["cache_max_size"],
                             default_os=args.default_os or ft.DEFAULT_OS, log_dir=log_dir,
                             keep_output=args.keep_output, reuse_boots=args.reuse_boots,
                             verbose=args.show_log or args.verbose > 0, environ=environ)
        print(f"dib test: {len(cases)} case(s)", file=sys.stderr, flush=True)

        def run() -> list[ft.CaseResult]:
            return ft.run_all(cases, options, on_result=progress, jobs=jobs)
    with _stdout_for_subunit(args.subunit_file == "-") as (report_out, subunit_out):
        results = run()
        _write_reports(args, results, report_out, subunit_out)
    return 0 if all(r.ok for r in results) else 1


def _write_reports(args: argparse.Namespace, results: list, report_out: TextIO,
                   subunit_out: BinaryIO | None) -> None:
    from dib.testing import functional as ft
    report_out.write(ft.format_text(results))
    report_out.flush()
    if args.junit:
        Path(args.junit).write_text(ft.format_junit(results))
    if args.json_file:
        text = ft.format_json(results)
        if args.json_file == "-":
            sys.stdout.write(text)
        else:
            Path(args.json_file).write_text(text)
    if args.subunit_file:
        from dib.testing.subunit_report import write_subunit
        if subunit_out is not None:
            write_subunit(results, subunit_out)
        else:
            with open(args.subunit_file, "wb") as handle:
                write_subunit(results, handle)


@contextlib.contextmanager
def _stdout_for_subunit(wanted: bool) -> Iterator[tuple[TextIO, BinaryIO | None]]:
    """With ``--subunit -`` the stream owns stdout: anything else written
    there (the text report, a stray print of a hook or library) would
    corrupt it, so fd 1 points at stderr until the stream is written."""
    if not wanted:
        yield sys.stdout, None
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with os.fdopen(os.dup(saved), "wb") as stream:
            yield sys.stderr, stream
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _changed(args: argparse.Namespace, index: ElementIndex) -> Selection:
    """What --changed selects, after saying why each element was chosen."""
    from dib.testing import changes
    from dib.testing.functional import CaseSelectionError
    if args.targets or args.all_elements:
        raise CaseSelectionError("--changed chooses the elements itself: give no ELEMENT "
                                 "and no --all with it",
                                 hint="a REF goes right after it: --changed=REF")
    selection = changes.changed_elements(index, args.changed or None, cwd=Path.cwd())
    print("\n".join(selection.describe("dib test --changed")), file=sys.stderr)
    return selection


def _cases_using(affected: list[str], index: ElementIndex) -> list[Case]:
    """The other elements' cases that build a selected or deleted element."""
    from dib.testing.functional import cases_depending_on
    found = cases_depending_on(affected, index)
    width = max([len(case.id) for case, _why in found] or [0])
    for case, why in found:
        print(f"  {case.id:<{width}}  {why}", file=sys.stderr)
    return [case for case, _why in found]


def _note_without(what: str, names: list[str]) -> None:
    if names:
        print(f"dib test: no {what} (nothing to run) in: {', '.join(names)}", file=sys.stderr)
