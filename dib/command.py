"""What every dib process shares, the commands and the build proper alike:
logging set-up, and turning DibErrors into exit codes.

It sits with dib.errors at the bottom of the layers: the build proper
(dib.pipeline.inner) is started as a command of its own and needs both."""
from __future__ import annotations

import logging
import sys
from typing import Callable

from dib.errors import DibError, Interrupted


class _InterruptibleHandlers:
    """A SIGTERM or Ctrl-C raises Interrupted wherever the main thread is.
    If that is inside a handler's emit(), logging would print the error and
    carry on, and the build would not stop; let it through instead."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], Interrupted):
            raise
        super().handleError(record)  # type: ignore[misc]


class ConsoleHandler(_InterruptibleHandlers, logging.StreamHandler):
    pass


class LogFileHandler(_InterruptibleHandlers, logging.FileHandler):
    pass


def setup_logging(verbosity: int = 0, logfile: str | None = None) -> None:
    level = logging.DEBUG if verbosity > 0 else logging.INFO
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if logfile else level)
    console = ConsoleHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d | %(message)s",
                                           "%H:%M:%S"))
    root.addHandler(console)
    if logfile:
        handler = LogFileHandler(logfile)
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s.%(msecs)03d | %(levelname)s %(name)s | %(message)s",
            "%Y-%m-%d %H:%M:%S"))
        root.addHandler(handler)


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Run a command body; a user's mistake prints one message, never a traceback."""
    try:
        return body()
    except DibError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
