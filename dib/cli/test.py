"""``dib test``: run elements' functional tests (test-elements) or unit tests."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DESCRIPTION = (
    "Build each test-element of the given elements (ELEMENT for all its cases, "
    "ELEMENT/CASE for one) through the real pipeline, on the shared phase cache, and "
    "check the result: a case passes when its build succeeds, or when it fails after "
    "creating /tmp/dib-test-should-fail in the target (DIB's convention); expect.yaml "
    "is checked against the built tree, and --boot boots the image in qemu. --unit runs "
    "the elements' own tests/ with pytest instead. Exit status: 0 all passed, 1 a case "
    "failed, 2 bad usage.")


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
    parser.add_argument("--hook-timeout", type=_seconds, default=None, metavar="S",
                        help="stop a phase whose hooks run longer than S seconds "
                             "(default 600; 0: no limit) [env: DIB_HOOK_TIMEOUT]")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="the phase cache shared with builds (default ~/.cache/dib) "
                             "[env: DIB_CACHE_DIR]")
    parser.add_argument("--no-cache", action="store_true",
                        help="build every case from scratch")
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


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def main(args: argparse.Namespace) -> int:
    from dib.config.settings import by_name
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
        timeout = args.hook_timeout
        if timeout is None:
            env_value = environ.get("DIB_HOOK_TIMEOUT", "")
            timeout = int(env_value) if env_value.isdigit() else ft.DEFAULT_HOOK_TIMEOUT
        cache_dir = args.cache_dir or environ.get("DIB_CACHE_DIR") or \
            by_name("cache_dir").default_value()
        options = ft.Options(cache_dir=Path(cache_dir), hook_timeout=timeout, boot=args.boot,
                             no_cache=args.no_cache,
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
