"""The ``dib`` command: build, elements, test, lint, boot, cache, doctor, verify, push,
pull."""
from __future__ import annotations

import importlib
import os
import sys

from dib.command import run_command, setup_logging
from dib.config.cli import ArgumentParser, add_build_arguments, config_from_args

# Subcommands that live in their own modules; each has add_parser(subparsers).
SUBCOMMAND_MODULES = ("dib.cli.elements", "dib.cli.lint", "dib.cli.test", "dib.cli.boot",
                      "dib.cli.cache", "dib.cli.doctor", "dib.cli.verify",
                      "dib.cli.push_pull")


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="dib", description="Build and test disk images from "
                            "diskimage-builder elements.")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="show debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       parser_class=ArgumentParser)
    build = subparsers.add_parser("build", help="build an image (disk-image-create flags)")
    add_build_arguments(build)
    build.add_argument("elements", nargs="+", metavar="ELEMENT")
    build.set_defaults(handler=_build)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_parser(subparsers)
    return parser


def _build(args) -> int:
    config = config_from_args(args, environ=os.environ, argv=sys.argv[1:])
    setup_logging(max(config.debug_trace, args.verbose), config.logfile)
    from dib.pipeline import run_build
    return run_build(config)


def _version() -> str:
    from dib import __version__
    return __version__


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
        setup_logging(args.verbose)
        return args.handler(args)
    return run_command("dib", body)


if __name__ == "__main__":
    sys.exit(main())
