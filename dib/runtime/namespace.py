"""Running the build in a private mount namespace.

The build process is started under ``unshare --mount --propagation private``:
whatever it mounts (overlays, /proc, /dev, binds) exists only in that
namespace, so nothing can leak onto the host, even if the build is killed
with SIGKILL. Without root it is started in a user namespace of its own
instead (``dib.runtime.userns``), with a private mount namespace too. This
process stays outside as the parent: it forwards SIGINT and SIGTERM to the
build, waits for it, and removes the workspace if the build could not.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Sequence

from dib import runner
from dib.errors import PreflightError
from dib.runtime import userns


def run_namespaced(module: str, args: Sequence[str]) -> int:
    """Run ``python -m module args`` in a new private mount namespace and
    return its exit status, forwarding SIGINT/SIGTERM to it.

    The build stays in our session and process group: a break shell it opens
    needs the terminal, and a kill of the whole group must reach it and its
    hooks."""
    with _start(module, args) as build:
        def forward(signum, _frame) -> None:
            build.send_signal(signum)
        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return build.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _start(module: str, args: Sequence[str]) -> runner.Spawned:
    command = [sys.executable, "-m", module, *args]
    if os.geteuid() != 0:
        return userns.start_in_userns(command, userns.id_map(), what="the build")
    if runner.which("unshare") is None:
        raise PreflightError("the unshare command is missing", hint="apt-get install util-linux")
    return runner.spawn(["unshare", "--mount", "--propagation", "private", "--", *command],
                        stdin=None, stdout=None, stderr=None, own_group=False,
                        what="the build")
