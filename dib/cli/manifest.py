"""diskimage-builder: build the images described in YAML manifests, one after another."""
from __future__ import annotations

import argparse
import os
import shlex
import sys

from dib.command import run_command, setup_logging
from dib.config.build import with_changes
from dib.config.cli import ArgumentParser
from dib.config.manifest import key_help, load_manifests
from dib.errors import DibError

PROG = "diskimage-builder"


def make_parser() -> ArgumentParser:
    description = ("Build every image described in YAML manifest files. Each file is a "
                   "list of image maps; maps with the same imagename are merged (lists "
                   "appended, maps updated, other values replaced) and a map without "
                   "imagename continues the one before it.\n\nKeys of an image map:\n"
                   + key_help())
    parser = ArgumentParser(prog=PROG, description=description,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE.yaml",
                        help="manifest files, read in order")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan of each image and build nothing")
    parser.add_argument("--stop-on-failure", action="store_true",
                        help="stop at the first image that fails to build")
    return parser


def _command_text(config) -> str:
    prog = "ramdisk-image-create" if config.ramdisk else "disk-image-create"
    return " ".join(shlex.quote(a) for a in [prog, *config.argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv

    def body() -> int:
        args = make_parser().parse_args(argv)
        setup_logging()
        configs = load_manifests(args.files, environ=os.environ)
        from dib import pipeline
        final = 0
        for config in configs:
            name = os.path.basename(config.image_name)
            if args.dry_run:
                config = with_changes(config, dry_run=True)
                sys.stdout.write(f"# image '{name}': {_command_text(config)}\n")
                sys.stdout.flush()
            else:
                print(f"{PROG}: building image '{name}': {_command_text(config)}",
                      file=sys.stderr)
                setup_logging(config.debug_trace, config.logfile)
            try:
                status = pipeline.run_build(config)
            except DibError as exc:
                print(f"{PROG}: error: image '{name}': {exc}", file=sys.stderr)
                status = exc.exit_code
            if status:
                final = status
                if args.stop_on_failure:
                    print(f"{PROG}: stopping after the failure of image '{name}' "
                          "(--stop-on-failure)", file=sys.stderr)
                    break
        return final
    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
