"""One error hierarchy for everything a user can cause.

The CLI prints a DibError's message without a traceback and exits with its
``exit_code``; any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations


class DibError(Exception):
    """A problem the user can fix; the message says what to do."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(DibError):
    """A bad flag, setting value, environment variable or YAML manifest."""

    exit_code = 2


class ElementError(DibError):
    """An element is missing, malformed or conflicts with another."""


class PlanError(DibError):
    """The build cannot be planned (hook clash, preflight failure)."""


class PreflightError(PlanError):
    """The host cannot do this build: a missing tool, not root, no space."""


class CommandError(DibError):
    """An external command failed; carries its argv and the tail of its output."""

    def __init__(self, argv: list[str], returncode: int, output_tail: str,
                 *, what: str | None = None) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output_tail = output_tail
        label = what or argv[0]
        message = f"{label} failed with exit status {returncode}: {' '.join(argv)}"
        if output_tail.strip():
            message += "\n" + _indent(output_tail.rstrip())
        super().__init__(message)


class CommandTimeout(CommandError):
    """An external command was still running when its time was up (and was killed)."""

    def __init__(self, argv: list[str], timeout: float, *, output_tail: str | None = None,
                 what: str | None = None) -> None:
        self.timeout = timeout
        tail = f"timed out after {timeout} s" if output_tail is None else output_tail
        super().__init__(argv, 124, tail, what=what)


class HookError(DibError):
    """A hook exited non-zero; names element, phase and hook."""

    def __init__(self, element: str, phase: str, hook: str, returncode: int,
                 output_tail: str, *, timed_out: bool = False) -> None:
        self.element = element
        self.phase = phase
        self.hook = hook
        self.returncode = returncode
        self.output_tail = output_tail
        self.timed_out = timed_out
        message = (f"hook {phase}/{hook} of element '{element}' failed "
                   f"with exit status {returncode}")
        if output_tail.strip():
            message += "\n  last lines of its output:\n" + _indent(output_tail.rstrip(), 4)
        super().__init__(message)


class BlockDeviceError(DibError):
    """Invalid block-device configuration or a failure creating the disk."""


class OutputError(DibError):
    """An output type could not be produced."""


class BootCheckError(DibError):
    """A boot check did not reach its marker."""


class Interrupted(DibError):
    """The build was stopped by a signal."""

    exit_code = 130


def _indent(text: str, width: int = 2) -> str:
    pad = " " * width
    return "\n".join(pad + line for line in text.splitlines())
