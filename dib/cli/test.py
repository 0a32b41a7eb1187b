"""``dib test``: run elements' functional tests (test-elements) or unit tests."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from dib.config.cli import add_build_arguments

DESCRIPTION = (
    "Build each test-element of the given elements (ELEMENT for all its cases, "
    "ELEMENT/CASE for one) through the real pipeline, on the shared phase cache, and "
    "check the result: a case passes when its build succeeds, or when it fails after "
    "creating /tmp/dib-test-should-fail in the target (DIB's convention); expect.yaml "
    "is checked against the built tree, and --boot boots the image in qemu. --unit runs "
    "the elements' own tests/ with pytest instead. A case's hook that runs longer than "
    "600 s is stopped unless --hook-timeout or DIB_HOOK_TIMEOUT says otherwise. Exit status: 0 all passed, 1 a case "
    "failed, 2 bad usage.")


#: build settings a test case takes from the command line or the environment
CASE_SETTINGS = ("hook_timeout", "cache_dir", "no_cache")


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
    parser.add_argument("--boot", action="store_true",
                        help="also build a qcow2 (adding 'vm') and boot it in qemu as "
                             "expect.yaml's boot: says: wait for its marker (default "
                             "'login:'), run its exec checks in the guest")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML results here")
    parser.add_argument("--json", metavar="FILE", dest="json_file",
                        help="write JSON results here ('-' for stdout)")
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

    environ = dict(os.environ)
    index = discover(environ)
    results: list[ft.CaseResult] = []

    def progress(result: ft.CaseResult) -> None:
        note = f"  {result.reason}" if result.reason else ""
        print(f"{result.status.upper():<5} {result.id} ({result.seconds:.1f} s){note}",
              file=sys.stderr, flush=True)

    log_dir = Path(args.log_dir) if args.log_dir else None
    if args.unit:
        chosen = ft.elements_for_unit(args.targets, index, all_elements=args.all_elements)
        if not chosen:
            print("dib test: no element on the search path has a tests/ directory",
                  file=sys.stderr)
        for element in chosen:
            result = ft.run_unit(element, log_dir=log_dir)
            results.append(result)
            progress(result)
    else:
        cases = ft.discover_cases(args.targets, index, all_elements=args.all_elements)
        value = case_settings(args, environ)
        options = ft.Options(cache_dir=Path(value["cache_dir"]),
                             hook_timeout=value["hook_timeout"], boot=args.boot,
                             no_cache=bool(value["no_cache"]),
                             default_os=args.default_os or ft.DEFAULT_OS, log_dir=log_dir,
                             keep_output=args.keep_output,
                             verbose=args.show_log or args.verbose > 0, environ=environ)
        print(f"dib test: {len(cases)} case(s)", file=sys.stderr, flush=True)
        results = ft.run_all(cases, options, on_result=progress)
    sys.stdout.write(ft.format_text(results))
    if args.junit:
        Path(args.junit).write_text(ft.format_junit(results))
    if args.json_file:
        text = ft.format_json(results)
        if args.json_file == "-":
            sys.stdout.write(text)
        else:
            Path(args.json_file).write_text(text)
    return 0 if all(r.ok for r in results) else 1
