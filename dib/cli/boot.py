"""``dib boot IMAGE``: boot an image in qemu and time it to a console marker."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dib.testing.boot import MILESTONES, boot_check


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "boot", help="boot an image in qemu (-snapshot) and time it to a console marker",
        description="Boot IMAGE in qemu (TCG unless KVM really works, always -snapshot) "
                    "with its serial console watched; print the seconds to each milestone. "
                    "Exit 0 only if the marker appeared.")
    parser.add_argument("image", type=Path, metavar="IMAGE",
                        help="disk image (raw, qcow2, vhd)")
    parser.add_argument("--firmware", choices=("bios", "uefi"), default="bios",
                        help="firmware to boot with (default: bios)")
    parser.add_argument("--timeout", type=float, default=180.0, metavar="S",
                        help="give up after S seconds (default: 180)")
    parser.add_argument("--expect", default=None, metavar="TEXT",
                        help="console text that means success (default: login:)")
    parser.add_argument("--memory", type=int, default=1024, metavar="MB",
                        help="guest memory in MiB (default: 1024)")
    parser.add_argument("--log", type=Path, default=None, metavar="FILE",
                        help="write the serial console output to FILE")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    report = boot_check(args.image, firmware=args.firmware, timeout=args.timeout,
                        expect=args.expect, memory_mb=getattr(args, "memory", 1024),
                        log_path=getattr(args, "log", None))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        order = ["first output"] + [name for name, _ in MILESTONES]
        if report.expect not in order:
            order.append(report.expect)
        print(f"boot {report.image} ({report.firmware}, {report.accel})")
        for name in order:
            seconds = report.milestones.get(name)
            shown = f"{seconds:6.1f} s" if seconds is not None else "     -  "
            print(f"  {name:<14} {shown}")
        verdict = "reached" if report.reached else f"NOT reached ({report.exit_reason})"
        print(f"  marker {report.expect!r} {verdict} after {report.seconds:.1f} s")
        if not report.reached and report.tail:
            print("  last console output:", file=sys.stderr)
            for line in report.tail.splitlines()[-15:]:
                print("    " + line, file=sys.stderr)
    return 0 if report.reached else 1
