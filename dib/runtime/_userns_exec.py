"""Helper started by ``dib.runtime.userns.start_in_userns``.

    python -m dib.runtime._userns_exec READY_FD GO_FD -- CMD [ARGS...]

Moves itself into a new user and mount namespace, writes ``u`` to READY_FD,
and waits for ``g`` on GO_FD: by then the parent has written its uid and gid
maps with newuidmap/newgidmap (only a process outside can). It then becomes
uid/gid 0 there, makes its mounts private (a mount namespace owned by a user
namespace starts with the host's shared mounts as slaves) and replaces itself
with CMD. Anything but ``g`` (the parent failed and closed the pipe) ends it.
"""
from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_REC = 0x4000
MS_PRIVATE = 0x40000


def _unshare(libc: ctypes.CDLL) -> None:
    # os.unshare exists from Python 3.12 on; ctypes does the same before.
    if hasattr(os, "unshare"):
        os.unshare(CLONE_NEWUSER | CLONE_NEWNS)
        return
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _make_mounts_private(libc: ctypes.CDLL) -> None:
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"making / private: {os.strerror(errno)}")


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: _userns_exec READY_FD GO_FD -- CMD ...", file=sys.stderr)
        return 2
    ready, go, cmd = int(argv[0]), int(argv[1]), argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        _unshare(libc)
    except OSError as exc:
        print(f"dib: cannot create a user namespace: {exc.strerror}", file=sys.stderr)
        return 1
    os.write(ready, b"u")
    os.close(ready)
    if os.read(go, 1) != b"g":
        return 1
    os.close(go)
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        _make_mounts_private(libc)
    except OSError as exc:
        print(f"dib: cannot become root in the user namespace: {exc.strerror}",
              file=sys.stderr)
        return 1
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        print(f"dib: cannot run {cmd[0]}: {exc.strerror}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
