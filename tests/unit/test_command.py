"""What every dib process shares: logging that a signal can interrupt, and
DibErrors turned into one line and an exit status."""
from __future__ import annotations

import io
import logging

import fixtures
import testtools

from dib.command import ConsoleHandler, run_command
from dib.errors import ConfigError, Interrupted


class _Stream(io.StringIO):
    """A console whose write raises what it is given, as a signal handler
    running during the write would."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


class TestConsoleHandler(testtools.TestCase):

    def _logger(self, stream: io.StringIO) -> logging.Logger:
        logger = logging.getLogger(f"dib.test.{self.id()}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = ConsoleHandler(stream)
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)
        return logger

    def test_a_signal_during_a_log_line_stops_the_build(self):
        logger = self._logger(_Stream(Interrupted("build stopped by signal SIGTERM")))
        self.assertRaises(Interrupted, logger.info, "a hook's line")

    def test_other_errors_while_logging_are_reported_and_the_build_goes_on(self):
        logger = self._logger(_Stream(OSError("disk full")))
        stderr = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch("logging.raiseExceptions", True))
        self.useFixture(fixtures.MonkeyPatch("sys.stderr", stderr))
        logger.info("a hook's line")
        self.assertIn("disk full", stderr.getvalue())


class TestRunCommand(testtools.TestCase):

    def test_a_users_mistake_is_one_line_and_its_exit_status(self):
        def body() -> int:
            raise ConfigError("no such element: nope")
        self.assertEqual(ConfigError.exit_code, run_command("dib", body))

    def test_an_interruption_exits_130(self):
        def body() -> int:
            raise Interrupted("build stopped by signal SIGTERM")
        self.assertEqual(130, run_command("dib", body))
