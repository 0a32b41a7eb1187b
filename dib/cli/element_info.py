"""element-info: DIB's element expansion, for people and for hooks to eval."""
from __future__ import annotations

import argparse
import os
import sys

from dib.command import run_command, setup_logging
from dib.config.cli import ArgumentParser
from dib.elements import discover, resolve
from dib.elements.envinfo import env_script


def make_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="element-info",
                            description="Show the elements a list of elements expands to.")
    parser.add_argument("elements", nargs="+", metavar="ELEMENT")
    parser.add_argument("-e", "--env", action="store_true",
                        help="print IMAGE_ELEMENT, IMAGE_ELEMENT_YAML and "
                             "get_image_element_array as shell to eval")
    parser.add_argument("-d", "--expand-dependencies", action="store_true",
                        help="print the expanded element names, one a line (the default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
        setup_logging()
        resolution = resolve(args.elements, discover(os.environ))
        if args.env:
            sys.stdout.write(env_script(resolution))
        else:
            sys.stdout.write("".join(f"{name}\n" for name in resolution.names))
        return 0
    return run_command("element-info", body)


if __name__ == "__main__":
    sys.exit(main())
