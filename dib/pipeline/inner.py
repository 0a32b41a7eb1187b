"""The build proper, running inside the private mount namespace.

Started by ``dib.pipeline.build`` as ``python -m dib.pipeline.inner WORKSPACE``.
"""
from __future__ import annotations

import signal
import sys
from dataclasses import replace
from pathlib import Path

from dib.command import run_command, setup_logging
from dib.errors import Interrupted
from dib.pipeline.build import take_over
from dib.pipeline.builder import Builder
from dib.pipeline.prepare import prepare
from dib.runtime.workspace import Workspace


def _stop(signum, _frame) -> None:
    raise Interrupted(f"build stopped by signal {signal.Signals(signum).name}")


def main(argv: list[str]) -> int:
    workspace = Workspace(Path(argv[0]))
    config, disk = take_over(workspace)
    workspace.claim()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    setup_logging(config.debug_trace, config.logfile)
    # The elements are resolved again here; the block-device layout is the
    # one the preflight read.
    return run_command("dib", lambda: Builder(replace(prepare(config), disk=disk),
                                              workspace).run())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
