"""The build proper, running inside the private mount namespace.

Started by ``dib.pipeline.build`` as ``python -m dib.pipeline.inner WORKSPACE``.
"""
from __future__ import annotations

import pickle
import signal
import sys
from pathlib import Path

from dib.cli.common import run_command, setup_logging
from dib.errors import Interrupted
from dib.pipeline.build import CONFIG_FILE
from dib.pipeline.builder import Builder
from dib.pipeline.prepare import prepare
from dib.runtime.workspace import Workspace


def _stop(signum, _frame) -> None:
    raise Interrupted(f"build stopped by signal {signal.Signals(signum).name}")


def main(argv: list[str]) -> int:
    workspace = Workspace(Path(argv[0]))
    config = pickle.loads((workspace.root / CONFIG_FILE).read_bytes())
    workspace.claim()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    setup_logging(config.debug_trace, config.logfile)
    return run_command("dib", lambda: Builder(prepare(config), workspace).run())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
