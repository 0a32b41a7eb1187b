"""Commands dib puts first on the PATH of host-side phases, in front of the host's own.

``gzip``: used as a plain stream compressor (what ramdisk hooks
do with ``cpio -o | gzip``), it runs ``dib.cache.gzstream``, which compresses
on every core and reuses members cached by earlier builds. Any other use
(decompressing, files, listing, combined or unknown options) runs the real
gzip with the same arguments, so hooks see gzip's own behaviour.

``cpio``: creating a newc archive from a list of names (``find | cpio -o -H
newc``, with at most ``--quiet``, ``-0`` and a numeric ``-R UID:GID``) runs
``dib.runtime.cpio_newc``, which writes the same bytes as GNU cpio and copies
file data in large blocks instead of 512 bytes at a time. Anything else runs
the real cpio.

``sudo``: in a build without root, a stand-in (hooks there already are uid
0). In a build as root, the host's sudo, except that a command named by one of
the shims above is given by the shim's path: sudo's ``secure_path`` would
otherwise find the host's own (DIB's ramdisk hooks run ``sudo cpio``).
"""
from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import dib

# The modules the shims run, by name: runtime sits above the cache layer.
GZIP_MODULE = "dib.cache.gzstream"
CPIO_MODULE = "dib.runtime.cpio_newc"

GZIP_SHIM = """#!/bin/bash
# gzip for dib's host-side hooks, written by the build (docs/caching.md).
# Compressing stdin to stdout with at most a level, -c, -n, -f or -q goes to
# dib's cached parallel compressor; anything else runs the real gzip unchanged.
real={real}
level=6
if [ -n "${{GZIP:-}}" ] || [ -t 0 ] || [ -t 1 ]; then
    exec "$real" "$@"
fi
for arg in "$@"; do
    case $arg in
        -[1-9]) level=${{arg#-}} ;;
        --fast) level=1 ;;
        --best) level=9 ;;
        -c|-n|-f|-q|--stdout|--to-stdout|--no-name|--force|--quiet) ;;
        *) exec "$real" "$@" ;;
    esac
done
# -I: neither the hook's working directory (often the image's tree) nor the
# caller's PYTHONPATH is searched; the build's own dib is imported
exec {python} -I -c {program} --level "$level" {cache_args}
"""
PROGRAM = ("import sys; sys.path.insert(0, {root!r}); "
           "from {module} import main; sys.exit(main())")


CPIO_SHIM = """#!/bin/bash
# cpio for dib's host-side hooks, written by the build (docs/caching.md).
# Creating a newc archive (-o -H newc, with at most --quiet, -0 and a numeric
# -R UID:GID) goes to dib's writer, which writes the same bytes in large
# blocks; anything else runs the real cpio unchanged.
real={real}
ARGS=("$@")
create=0 format= extra=()
if [ -t 0 ]; then
    exec "$real" "$@"
fi
while [ $# -gt 0 ]; do
    case $1 in
        -o|--create) create=1 ;;
        -H|--format) format=${{2:-}}; shift ;;
        -Hnewc|--format=newc) format=newc ;;
        --quiet) extra+=(--quiet) ;;
        -0|--null) extra+=(--null) ;;
        -R|--owner) set -- "--owner=${{2:-}}" "${{@:3}}"; continue ;;
        --owner=*)
            [[ ${{1#--owner=}} =~ ^[0-9]+:[0-9]+$ ]] || exec "$real" "${{ARGS[@]}}"
            extra+=("$1") ;;
        *) exec "$real" "${{ARGS[@]}}" ;;
    esac
    shift
done
if [ "$create" != 1 ] || [ "$format" != newc ]; then
    exec "$real" "${{ARGS[@]}}"
fi
exec {python} -I -c {program} "${{extra[@]}}"
"""


def _program(module: str) -> str:
    return PROGRAM.format(root=str(Path(dib.__file__).resolve().parent.parent), module=module)


def _write_shim(target: Path, name: str, text: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    shim = target / name
    shim.write_text(text)
    shim.chmod(0o755)


def write_host_shims(target: Path, *, path: str, cache: Path | None,
                     python: str = sys.executable) -> bool:
    """The gzip shim into ``target`` (a directory put first on host phases'
    PATH). ``path`` is the PATH the real commands are found on; ``cache`` the
    directory of cached gzip members, or None to compress without one.
    Returns False, writing nothing, where the host has no gzip to fall back to."""
    real = shutil.which("gzip", path=path)
    if real is None:
        return False
    cache_args = f"--cache {shlex.quote(str(cache))}" if cache is not None else ""
    _write_shim(target, "gzip", GZIP_SHIM.format(
        real=shlex.quote(real), python=shlex.quote(python),
        program=shlex.quote(_program(GZIP_MODULE)), cache_args=cache_args))
    return True


def write_cpio_shim(target: Path, *, path: str, python: str = sys.executable) -> bool:
    """The cpio shim into ``target``; False, writing nothing, where the host
    has no cpio to fall back to."""
    real = shutil.which("cpio", path=path)
    if real is None:
        return False
    text = CPIO_SHIM.format(real=shlex.quote(real), python=shlex.quote(python),
                            program=shlex.quote(_program(CPIO_MODULE)))
    _write_shim(target, "cpio", text)
    return True


# sudo for hooks on the host in a rootless build. DIB's elements call sudo
# there; in the build's user namespace they already are uid 0, and the
# host's sudo cannot work (its files belong to the host's root, which the
# namespace does not map). Options that only say how sudo behaves are
# dropped; NAME=VALUE words before the command are kept for env.
SUDO_SHIM = r"""#!/bin/bash
set -eu
while [ $# -gt 0 ]; do
    case "$1" in
        -E|-H|-n|-S|--preserve-env|--preserve-env=*|--set-home|--non-interactive|--stdin)
            shift ;;
        -u|--user)
            if [ "${2:-}" != root ] && [ "${2:-}" != 0 ]; then
                echo "sudo in a rootless build: only -u root works (asked: ${2:-nothing})" >&2
                exit 1
            fi
            shift 2 ;;
        --)
            shift
            break ;;
        -*)
            echo "sudo in a rootless build: option $1 is not supported; run as root" >&2
            exit 1 ;;
        *)
            break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "sudo in a rootless build: no command given" >&2
    exit 1
fi
exec env -- "$@"
"""


def write_sudo_shim(directory: Path) -> Path:
    """``directory`` with SUDO_SHIM as its ``sudo``; returns the directory."""
    if not (directory / "sudo").exists():
        _write_shim(directory, "sudo", SUDO_SHIM)
    return directory


# sudo for hooks on the host in a build as root: the host's sudo, with every
# option and its effect, but a command this directory has a shim for is
# named by the shim's path. Options that take a value are listed so that
# their value is not taken for the command.
SUDO_TO_SHIMS = r"""#!/bin/bash
real={real}
shims={shims}
opts=()
while [ $# -gt 0 ]; do
    case $1 in
        -u|-g|-C|-D|-h|-p|-r|-t|-T|-U|--user|--group|--close-from|--chdir|--host|\
        --prompt|--role|--type|--command-timeout|--other-user)
            [ $# -ge 2 ] || break
            opts+=("$1" "$2")
            shift 2 ;;
        --)
            opts+=("$1")
            shift
            break ;;
        -*|*=*)
            opts+=("$1")
            shift ;;
        *)
            break ;;
    esac
done
if [ $# -gt 0 ] && [ "$1" != sudo ] && [[ $1 != */* ]] && [ -x "$shims/$1" ]; then
    command=$1
    shift
    exec "$real" "${{opts[@]}}" "$shims/$command" "$@"
fi
exec "$real" "${{opts[@]}}" "$@"
"""


def write_sudo_to_shims(directory: Path, *, path: str) -> bool:
    """The host's sudo, pointing the shims' commands at the shims, as
    ``directory``'s ``sudo``; False, writing nothing, where the host has none."""
    real = shutil.which("sudo", path=path)
    if real is None:
        return False
    _write_shim(directory, "sudo", SUDO_TO_SHIMS.format(real=shlex.quote(real),
                                                       shims=shlex.quote(str(directory))))
    return True
