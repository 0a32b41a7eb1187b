"""Commands dib puts first on the PATH of host-side phases, in front of the host's own.

``gzip``: used as a plain stream compressor (what ramdisk hooks
do with ``cpio -o | gzip``), it runs ``dib.cache.gzstream``, which compresses
on every core and reuses members cached by earlier builds. Any other use
(decompressing, files, listing, combined or unknown options) runs the real
gzip with the same arguments, so hooks see gzip's own behaviour.

``sudo``, in a build without root only: hooks there already are uid 0.
"""
from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import dib

# The module the shim runs; named, not imported: runtime sits above the cache layer.
GZIP_MODULE = "dib.cache.gzstream"

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


def write_host_shims(target: Path, *, path: str, cache: Path | None,
                     python: str = sys.executable) -> bool:
    """The shims into ``target`` (a directory put first on host phases' PATH).
    ``path`` is the PATH the real commands are found on; ``cache`` the
    directory of cached gzip members, or None to compress without one.
    Returns False, writing nothing, where the host has no gzip to fall back to."""
    real = shutil.which("gzip", path=path)
    if real is None:
        return False
    target.mkdir(parents=True, exist_ok=True)
    cache_args = f"--cache {shlex.quote(str(cache))}" if cache is not None else ""
    shim = target / "gzip"
    program = PROGRAM.format(root=str(Path(dib.__file__).resolve().parent.parent),
                             module=GZIP_MODULE)
    shim.write_text(GZIP_SHIM.format(real=shlex.quote(real), python=shlex.quote(python),
                                     program=shlex.quote(program), cache_args=cache_args))
    shim.chmod(0o755)
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
    shim = directory / "sudo"
    if not shim.exists():
        directory.mkdir(parents=True, exist_ok=True)
        shim.write_text(SUDO_SHIM)
        shim.chmod(0o755)
    return directory
