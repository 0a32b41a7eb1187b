"""The one runner for every external command.

Commands are argv lists, never shell strings. Each run is logged with its
argv, duration and exit status; a failure raises CommandError carrying the
tail of the command's output so the user sees why.
"""
from __future__ import annotations

import collections
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from dib.errors import CommandError, PreflightError

LOG = logging.getLogger("dib.runner")
TAIL_LINES = 30


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(argv: Sequence[str], *, check: bool = True, env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None, input: str | bytes | None = None,
        timeout: float | None = None, what: str | None = None,
        binary: bool = False) -> Result:
    """Run a command to completion and capture its output."""
    argv = [os.fspath(a) for a in argv]
    LOG.debug("run: %s", " ".join(argv))
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, env=dict(env) if env is not None else None, cwd=cwd,
                              input=input, capture_output=True, timeout=timeout,
                              text=not binary and not isinstance(input, bytes))
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, f"command not found: {argv[0]}", what=what) from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, 124, f"timed out after {timeout} s", what=what) from exc
    seconds = time.monotonic() - start
    stdout, stderr = proc.stdout, proc.stderr
    if isinstance(stdout, bytes) and not binary:
        stdout, stderr = stdout.decode(errors="replace"), stderr.decode(errors="replace")
    LOG.debug("exit %d after %.2fs: %s", proc.returncode, seconds, argv[0])
    result = Result(argv, proc.returncode, stdout, stderr, seconds)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, _tail_text(stderr, stdout), what=what)
    return result


def stream(argv: Sequence[str], *, on_line: Callable[[str], None] | None = None,
           check: bool = True, env: Mapping[str, str] | None = None,
           cwd: str | os.PathLike | None = None, timeout: float | None = None,
           what: str | None = None, stdin: int | None = subprocess.DEVNULL,
           tail_lines: int = TAIL_LINES) -> Result:
    """Run a command, passing each output line (stdout and stderr merged) to on_line.

    Only the last ``tail_lines`` lines are kept in memory; they are the
    Result's stdout and the CommandError's tail.
    """
    argv = [os.fspath(a) for a in argv]
    LOG.debug("stream: %s", " ".join(argv))
    start = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    try:
        proc = subprocess.Popen(argv, env=dict(env) if env is not None else None, cwd=cwd,
                                stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=False)
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, f"command not found: {argv[0]}", what=what) from exc
    assert proc.stdout is not None
    deadline = start + timeout if timeout else None
    # The deadline must hold while the command is silent too: reading its
    # output blocks, so a timer kills it when time is up.
    watchdog = threading.Timer(timeout, proc.kill) if timeout else None
    if watchdog is not None:
        watchdog.daemon = True
        watchdog.start()
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            tail.append(line)
            if on_line:
                on_line(line)
            if deadline and time.monotonic() > deadline:
                proc.kill()
                break
        returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()) if deadline else None)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        returncode = 124
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
    if deadline and time.monotonic() > deadline and returncode != 0:
        returncode = 124
        tail.append(f"(timed out after {timeout} s)")
    seconds = time.monotonic() - start
    LOG.debug("exit %d after %.2fs: %s", returncode, seconds, argv[0])
    text = "\n".join(tail)
    result = Result(argv, returncode, text, "", seconds)
    if check and returncode != 0:
        raise CommandError(argv, returncode, text, what=what)
    return result


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent goes, however it goes
    (a SIGKILLed parent runs no cleanup of its own)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Spawned:
    """A command started in a process group of its own.

    ``kill()`` ends the whole group and reaps the command; leaving a ``with``
    block does the same, so an exception or Ctrl-C leaves nothing running.
    """

    def __init__(self, argv: list[str], proc: subprocess.Popen, what: str | None) -> None:
        self.argv = argv
        self.proc = proc
        self.what = what or argv[0]
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdin(self):
        return self.proc.stdin

    @property
    def stdout(self):
        return self.proc.stdout

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> int:
        """SIGKILL the process group (if still there), reap, close the pipes."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            returncode = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a D-state process
            self.proc.kill()
            returncode = self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        LOG.debug("ended %s (status %s) after %.2fs", self.what, returncode,
                  time.monotonic() - self.started)
        return returncode

    def __enter__(self) -> "Spawned":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def spawn(argv: Sequence[str], *, stdin: int | None = subprocess.DEVNULL,
          stdout: int | None = subprocess.PIPE, stderr: int | None = subprocess.STDOUT,
          env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
          what: str | None = None) -> Spawned:
    """Start a long-running command (a VM) that the caller talks to and ends.

    It runs in its own session, so ``Spawned.kill`` reaches everything it
    started and a Ctrl-C on the terminal reaches only us (we then kill it);
    and it dies with this process even if this process is SIGKILLed.
    """
    argv = [os.fspath(a) for a in argv]
    LOG.debug("spawn: %s", " ".join(argv))
    try:
        proc = subprocess.Popen(argv, env=dict(env) if env is not None else None, cwd=cwd,
                                stdin=stdin, stdout=stdout, stderr=stderr,
                                start_new_session=True, preexec_fn=_die_with_parent)
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, f"command not found: {argv[0]}", what=what) from exc
    return Spawned(argv, proc, what)


def which(tool: str) -> str | None:
    """Find a tool on PATH, also looking in the sbin directories root normally has."""
    extra = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])
    return shutil.which(tool, path=os.environ.get("PATH", "") + os.pathsep + extra)


def require_tools(tools: Iterable[tuple[str, str]], purpose: str) -> None:
    """Fail early, naming every missing (tool, Debian package) at once."""
    missing = [(tool, pkg) for tool, pkg in tools if which(tool) is None]
    if missing:
        names = ", ".join(f"{t} (Debian package {p})" for t, p in missing)
        pkgs = " ".join(sorted({p for _, p in missing}))
        raise PreflightError(f"{purpose} needs host tools that are missing: {names}",
                             hint=f"apt-get install {pkgs}")


def _tail_text(*texts: str | bytes | None, lines: int = TAIL_LINES) -> str:
    out: list[str] = []
    for text in texts:
        if not text:
            continue
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        out.extend(text.rstrip().splitlines())
    return "\n".join(out[-lines:])
