"""Running the build in a private mount namespace.

The build process is started under ``unshare --mount --propagation private``:
whatever it mounts (overlays, /proc, /dev, binds) exists only in that
namespace, so nothing can leak onto the host, even if the build is killed
with SIGKILL. This process stays outside as the parent: it forwards SIGINT
and SIGTERM to the build, waits for it, and removes the workspace if the
build could not.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from typing import Sequence

from dib import runner
from dib.errors import PreflightError

def run_namespaced(module: str, args: Sequence[str]) -> int:
    """Run ``python -m module args`` in a new private mount namespace and
    return its exit status, forwarding SIGINT/SIGTERM to it."""
    if runner.which("unshare") is None:
        raise PreflightError("the unshare command is missing", hint="apt-get install util-linux")
    argv = ["unshare", "--mount", "--propagation", "private", "--",
            sys.executable, "-m", module, *args]
    proc = subprocess.Popen(argv)
    forwarded: list[int] = []

    def forward(signum, _frame) -> None:
        forwarded.append(signum)
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                return proc.wait()
            except InterruptedError:
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
