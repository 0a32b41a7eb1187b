"""disk-image-create and ramdisk-image-create, flag for flag as DIB users know them."""
from __future__ import annotations

import os
import sys

from dib.command import run_command, setup_logging
from dib.config.cli import build_parser, config_from_args

DESCRIPTION = ("Build a disk image from diskimage-builder elements. Flags, environment "
               "variables and elements work as with diskimage-builder.")


def _main(prog: str, argv: list[str] | None, ramdisk: bool) -> int:
    argv = sys.argv[1:] if argv is None else argv

    def body() -> int:
        parser = build_parser(prog, DESCRIPTION)
        parser.add_argument("--version", action="version", version=_version())
        args = parser.parse_args(argv)
        if not args.elements:
            parser.error("at least one element is needed (an operating system element "
                         "such as debian-minimal)")
        config = config_from_args(args, environ=os.environ, argv=argv, ramdisk=ramdisk)
        setup_logging(config.debug_trace, config.logfile)
        from dib.pipeline import run_build
        return run_build(config)
    return run_command(prog, body)


def _version() -> str:
    from dib import __version__
    return __version__


def disk_image_create(argv: list[str] | None = None) -> int:
    return _main("disk-image-create", argv, ramdisk=False)


def ramdisk_image_create(argv: list[str] | None = None) -> int:
    return _main("ramdisk-image-create", argv, ramdisk=True)


if __name__ == "__main__":
    sys.exit(disk_image_create())
