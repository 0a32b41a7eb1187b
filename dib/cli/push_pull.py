"""``dib push IMAGE REFERENCE`` and ``dib pull REFERENCE``: a finished disk
image to and from an OCI registry (docs/publish.md)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from dib.publish import describe, pull, push

PUSH_DESCRIPTION = """\
Publish IMAGE (NAME.qcow2 or NAME.raw) as REFERENCE, oci://HOST[:PORT]/REPO:TAG.
By default it goes up as an OCI artifact: the image file as a layer of its own
with the build's NAME.spdx.json, NAME.provenance.json and NAME.d/ beside it.
With --container-disk it goes up as a KubeVirt containerDisk instead: an OCI
image whose one layer holds disk/NAME.qcow2 (uid/gid 107, mode 0440). Both
carry the image's SHA-256, creation time and elements as manifest annotations.
Credentials come from docker login / podman login (~/.docker/config.json,
$REGISTRY_AUTH_FILE); a registry on a loopback address is reached over plain
HTTP, any other over HTTPS unless --insecure is given."""

PULL_DESCRIPTION = """\
Fetch REFERENCE (oci://HOST[:PORT]/REPO:TAG), pushed by dib push in either
layout (or any containerDisk), check every blob against its digest and write
the image to FILE (default: the name it was pushed under, in the current
directory; -o DIR puts it there). An artifact's SBOM, provenance and manifests
directory are written beside it, named after FILE. A damaged blob is an error
and leaves no file behind."""


def _insecure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--insecure", action="store_true",
                        help="talk to the registry over plain HTTP (a registry on a "
                             "loopback address always is)")


def add_parser(subparsers) -> None:
    push_parser = subparsers.add_parser(
        "push", help="publish an image to an OCI registry (artifact or containerDisk)",
        description=PUSH_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    push_parser.add_argument("image", type=Path, metavar="IMAGE",
                             help="a qcow2 or raw image written by a build")
    push_parser.add_argument("reference", metavar="REFERENCE",
                             help="oci://HOST[:PORT]/REPO:TAG")
    push_parser.add_argument("--container-disk", action="store_true",
                             help="push a KubeVirt containerDisk image instead of an artifact")
    _insecure(push_parser)
    push_parser.set_defaults(handler=_push)

    pull_parser = subparsers.add_parser(
        "pull", help="fetch an image pushed with dib push (or a containerDisk)",
        description=PULL_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    pull_parser.add_argument("reference", metavar="REFERENCE",
                             help="oci://HOST[:PORT]/REPO:TAG")
    pull_parser.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                             help="where to write the image (a file, or a directory)")
    _insecure(pull_parser)
    pull_parser.set_defaults(handler=_pull)


def _push(args: argparse.Namespace) -> int:
    print(describe(push(args.image, args.reference, container_disk=args.container_disk,
                        insecure=args.insecure, environ=os.environ)))
    return 0


def _pull(args: argparse.Namespace) -> int:
    print(describe(pull(args.reference, args.output, insecure=args.insecure,
                        environ=os.environ)))
    return 0
