"""``dib verify IMAGE``: is IMAGE the file its provenance statement names?"""
from __future__ import annotations

import argparse
from pathlib import Path

from dib.provenance.verify import verify

DESCRIPTION = """\
Recompute IMAGE's SHA-256 and check that it is the digest of a subject of its
provenance statement (by default NAME.provenance.json beside IMAGE, written by
every build unless --no-provenance was given). Exit 0 with one line naming the
digest when it is; 1 when the file does not match or is not a subject; 2 when
IMAGE or the statement is missing or the statement is not SLSA provenance.
The statement is not signed: this shows that IMAGE is unchanged since the
statement was written, not who wrote it."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify", help="check an image against its SLSA provenance statement",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path, metavar="IMAGE",
                        help="an output of a build (NAME.qcow2, NAME.raw, NAME.tar, ...)")
    parser.add_argument("--provenance", type=Path, default=None, metavar="FILE",
                        help="the statement to check against (default: NAME.provenance.json "
                             "beside IMAGE)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    print(verify(args.image, args.provenance).line())
    return 0
