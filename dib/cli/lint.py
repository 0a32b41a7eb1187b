"""``dib lint`` and the DIB-compatible ``dib-lint`` command."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dib.command import run_command

DESCRIPTION = ("Check elements for the mistakes DIB's dib-lint finds, plus hook files "
               "dib-run-parts would skip, element-deps that do not exist, invalid "
               "package-installs, shellcheck warnings and Python hooks that do not "
               "compile. Exit status: 0 clean, 1 findings, 2 bad usage.")
EPILOG = ("PATH is an element directory or a directory of elements (default: ./elements "
          "if present, else every directory on ELEMENTS_PATH). Disable rules for one file "
          "with a line '# dib-lint: disable=RULE...'. Rules: {rules}.")


def _configure(parser: argparse.ArgumentParser) -> None:
    from dib.testing.lint import RULES
    parser.description = DESCRIPTION
    parser.epilog = EPILOG.format(rules=", ".join(RULES))
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="element directories or directories of elements")
    parser.add_argument("--json", action="store_true",
                        help="print the findings as a JSON list of objects")
    parser.add_argument("--no-shellcheck", action="store_true",
                        help="do not run shellcheck even if it is installed")
    parser.add_argument("--ignore", action="append", default=[], metavar="RULE",
                        help="skip this rule everywhere (repeatable)")
    parser.add_argument("--changed", nargs="?", const="", default=None, metavar="REF",
                        help="only the elements whose files changed since REF (default: "
                             "the merge base of HEAD with the default branch; working-tree "
                             "changes count) and the elements that depend on them")
    parser.set_defaults(handler=main)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("lint", help="check elements for common mistakes")
    _configure(parser)


def main(args: argparse.Namespace) -> int:
    from dib.testing.lint import (RULES, LintUsageError, format_json, format_text, lint,
                                  lint_elements)
    ignore = {rule for item in args.ignore for rule in item.replace(",", " ").split()}
    unknown = sorted(ignore - set(RULES))
    if unknown:
        raise LintUsageError(f"dib lint: unknown rule(s) {', '.join(unknown)}",
                             hint=f"rules are {', '.join(RULES)}")
    if args.changed is not None:
        elements = _changed_elements(args.paths, args.changed)
        if not elements:
            return 0
        report = lint_elements(elements, shellcheck=not args.no_shellcheck, ignore=ignore)
    else:
        report = lint(args.paths or None, shellcheck=not args.no_shellcheck, ignore=ignore)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        sys.stdout.write(format_json(report))
    else:
        sys.stdout.write(format_text(report))
        count = len(report.findings)
        print(f"dib lint: {len(report.elements)} element(s), "
              f"{count} problem{'s' if count != 1 else ''}", file=sys.stderr)
    return 1 if report.findings else 0


def _changed_elements(paths: list[str], ref: str) -> list[Path]:
    """The element directories --changed selects among those ``paths`` name;
    says why each was chosen."""
    from dib.testing import changes
    from dib.testing.lint import collect_elements, default_paths, is_element_dir
    chosen = [Path(p) for p in paths] if paths else default_paths()
    element_dirs = collect_elements(chosen)
    roots = [p for p in chosen if not is_element_dir(p)]
    index = changes.index_of(element_dirs, roots)
    selection = changes.changed_elements(index, ref or None, cwd=Path.cwd())
    print("\n".join(selection.describe("dib lint --changed")), file=sys.stderr)
    if not selection.names:
        print("dib lint: no element changed: nothing to lint", file=sys.stderr)
    return [index[name].path for name in selection.names]


def make_standalone_parser() -> argparse.ArgumentParser:
    from dib.config.cli import ArgumentParser
    parser = ArgumentParser(prog="dib-lint")
    _configure(parser)
    return parser


def standalone(argv: list[str] | None = None) -> int:
    """The ``dib-lint`` console script."""
    def body() -> int:
        args = make_standalone_parser().parse_args(sys.argv[1:] if argv is None else argv)
        return main(args)
    return run_command("dib-lint", body)


if __name__ == "__main__":
    sys.exit(standalone())
