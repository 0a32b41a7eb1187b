"""``dib boot [IMAGE]``: boot in qemu, time it to a console marker, check the guest."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dib.errors import BootCheckError
from dib.testing.boot import (MILESTONES, BootReport, BootSpec, boot, describe_failure,
                              parse_size)

DESCRIPTION = """\
Boot IMAGE in qemu (TCG unless KVM really works, always -snapshot: the image is
never written) with its serial console watched, and print the seconds to each
milestone. --kernel boots a kernel (and --initrd) directly: with no IMAGE that is
a ramdisk boot, with IMAGE the disk is there for root= in --append.
--exec runs commands in the guest once the marker was seen, by default through a
login on the serial console (systemd 252+ in the guest), with --login ssh as root
over SSH (sshd in the guest; cloud-init images get the key from the seed).
Exit 0 only if the marker appeared and every command exited 0."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "boot", help="boot an image or kernel in qemu (-snapshot), time it, run commands in it",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path, metavar="IMAGE", nargs="?",
                        help="disk image (raw, qcow2, vhd); optional with --kernel")
    parser.add_argument("--firmware", choices=("bios", "uefi"), default="bios",
                        help="firmware to boot with (default: bios)")
    parser.add_argument("--timeout", type=float, default=180.0, metavar="S",
                        help="give up after S seconds, commands included (default: 180)")
    parser.add_argument("--expect", default=None, metavar="TEXT",
                        help="console text that means success (default: login:)")
    parser.add_argument("--memory", default=None, metavar="SIZE",
                        help="guest memory: MiB, or with a unit (3G); default 1024, or "
                             "3G for a ramdisk boot with an initrd over 64 MiB")
    parser.add_argument("--log", type=Path, default=None, metavar="FILE",
                        help="write the serial console output to FILE")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.add_argument("--wait-menu", action="store_true",
                        help="let GRUB's menu count down (DIB_GRUB_TIMEOUT) instead of "
                             "pressing Enter as soon as it shows, which boots the same "
                             "default entry")
    kernel = parser.add_argument_group("direct kernel boot")
    kernel.add_argument("--kernel", type=Path, metavar="FILE",
                        help="boot this kernel (qemu -kernel) instead of the disk's "
                             "bootloader")
    kernel.add_argument("--initrd", type=Path, metavar="FILE",
                        help="initramfs for --kernel")
    kernel.add_argument("--append", metavar="TEXT",
                        help="kernel command line for --kernel; console=ttyS0,115200 is "
                             "added unless TEXT names a console (e.g. "
                             "\"root=LABEL=cloudimg-rootfs ro\")")
    machine = parser.add_argument_group("machine")
    machine.add_argument("--seed", metavar="USER-DATA[,META-DATA]",
                         help="attach a NoCloud seed disk (label CIDATA) with these files; "
                              "meta-data defaults to an instance-id and local-hostname")
    machine.add_argument("--nics", type=int, default=0, metavar="N",
                         help="N virtio NICs on qemu's user network (default: none)")
    machine.add_argument("--nic2", action="store_const", const=2, dest="nics",
                         help="same as --nics 2")
    machine.add_argument("--grow", metavar="SIZE",
                         help="boot a qcow2 overlay of IMAGE with this larger virtual size "
                              "(e.g. 4G); IMAGE is not touched")
    guest = parser.add_argument_group("commands in the guest")
    guest.add_argument("--exec", action="append", default=[], metavar="CMD", dest="commands",
                       help="run CMD (with sh -c) in the guest after the marker; repeatable. "
                            "Exit status non-zero if a command fails")
    guest.add_argument("--login", choices=("serial", "ssh"), default="serial",
                       help="how --exec gets in: serial (a passwordless root login the "
                            "boot adds through a systemd credential) or ssh (default: "
                            "serial)")
    guest.add_argument("--ssh-key", type=Path, metavar="FILE",
                       help="private key for --login ssh (FILE.pub beside it); default: a "
                            "new key for this boot")
    parser.set_defaults(handler=main)


def spec_from_args(args: argparse.Namespace) -> BootSpec:
    memory = None
    if args.memory is not None:
        memory = parse_size(args.memory, what="--memory", bare_unit="M") // 1024 ** 2
    grow = parse_size(args.grow, what="--grow", bare_unit="G") if args.grow else None
    if args.ssh_key is not None and args.login != "ssh":
        raise BootCheckError("--ssh-key is for --login ssh")
    return BootSpec(image=args.image, firmware=args.firmware, kernel=args.kernel,
                    initrd=args.initrd, append=args.append, memory_mb=memory,
                    nics=args.nics, seed=parse_seed(args.seed), grow=grow,
                    exec=list(args.commands), login=args.login, ssh_key=args.ssh_key,
                    expect=args.expect, timeout=args.timeout, log_path=args.log,
                    wait_menu=args.wait_menu)


def parse_seed(text: str | None) -> dict[str, Path] | None:
    """``USER-DATA[,META-DATA]`` → seed file name → path."""
    if not text:
        return None
    parts = text.split(",")
    if len(parts) > 2 or not all(parts):
        raise BootCheckError(f"--seed {text!r}: give USER-DATA or USER-DATA,META-DATA")
    return dict(zip(("user-data", "meta-data"), (Path(p) for p in parts)))


def main(args: argparse.Namespace) -> int:
    report = boot(spec_from_args(args))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report)
    if not report.ok:
        print(f"dib boot: {describe_failure(report)}", file=sys.stderr)
    return 0 if report.ok else 1


def print_report(report: BootReport) -> None:
    order = ["first output"] + [name for name, _ in MILESTONES]
    if report.expect not in order:
        order.append(report.expect)
    what = report.image or report.kernel
    extras = [report.firmware, report.accel, f"{report.memory_mb} MiB"]
    if report.kernel:
        extras.append(f"kernel {report.kernel.name}")
    if report.grown_to:
        extras.append(f"grown to {report.grown_to / 1024 ** 3:g} GiB")
    if report.seed:
        extras.append("seed " + "+".join(report.seed))
    if report.nics:
        extras.append(f"{report.nics} NIC(s)")
    print(f"boot {what} ({', '.join(extras)})")
    width = max(len(name) for name in order)
    for name in order:
        seconds = report.milestones.get(name)
        shown = f"{seconds:6.1f} s" if seconds is not None else "     -  "
        print(f"  {name:<{width}} {shown}")
    verdict = "reached" if report.reached else f"NOT reached ({report.exit_reason})"
    print(f"  marker {report.expect!r} {verdict}")
    if report.login:
        _print_exec(report)
    print(f"  total {report.seconds:.1f} s")
    if not report.ok:
        if report.tail and (not report.reached or report.exec_error):
            print("  last console output:", file=sys.stderr)
            for line in report.tail.splitlines()[-15:]:
                print("    " + line, file=sys.stderr)


def _print_exec(report: BootReport) -> None:
    took = f", {report.exec_seconds:.1f} s" if report.exec_seconds is not None else ""
    state = f", system {report.system_state}" if report.system_state else ""
    print(f"  exec ({report.login} login{state}{took})")
    for result in report.exec_results:
        status = "not finished" if result.status is None else f"exit {result.status}"
        print(f"  $ {result.command}    [{status}]")
        for line in result.output.rstrip("\n").splitlines():
            print(f"    {line}")
    if report.exec_error:
        print(f"  exec failed: {report.exec_error}")
