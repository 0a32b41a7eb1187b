"""The one runner for every external command.

Commands are argv lists, never shell strings. Each run is logged with its
argv, duration and exit status; a failure raises CommandError carrying the
tail of the command's output so the user sees why.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from dib.errors import CommandError, CommandTimeout, PreflightError

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
        binary: bool = False, stdin: int | None = None, own_group: bool = False,
        log_file: str | os.PathLike | None = None) -> Result:
    """Run a command to completion and capture its output.

    ``stdin`` applies when there is no ``input`` (default: ours). With
    ``own_group`` the command runs in a session of its own and a timeout or
    an interruption kills everything it started (see ``_start``). With
    ``log_file`` its output, stdout and stderr interleaved, is appended to
    that file instead of being kept; the Result's stdout is then the tail.
    A command still running after ``timeout`` seconds raises CommandTimeout.
    """
    argv = [os.fspath(a) for a in argv]
    LOG.debug("run: %s", " ".join(argv))
    start = time.monotonic()
    text = not binary and not isinstance(input, bytes)
    with _output(log_file) as (out, err, offset):
        proc = _start(argv, what=what, own_group=own_group, env=env, cwd=cwd,
                      stdin=subprocess.PIPE if input is not None else stdin,
                      stdout=out, stderr=err, text=text)
        try:
            if log_file is None:
                stdout, stderr = proc.communicate(input, timeout=timeout)
            else:
                stdout, stderr = _communicate_until(proc, input, timeout, own_group)
        except subprocess.TimeoutExpired:
            _end(proc, own_group)
            raise CommandTimeout(argv, timeout or 0, what=what) from None
        except BaseException:
            _end(proc, own_group)
            raise
    seconds = time.monotonic() - start
    if log_file is not None:
        stdout, stderr = _file_tail(log_file, offset), ""
    elif isinstance(stdout, bytes) and not binary:
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
           tail_lines: int = TAIL_LINES, own_group: bool = False) -> Result:
    """Run a command, passing each output line (stdout and stderr merged) to on_line.

    Only the last ``tail_lines`` lines are kept in memory; they are the
    Result's stdout and the CommandError's tail.
    """
    argv = [os.fspath(a) for a in argv]
    LOG.debug("stream: %s", " ".join(argv))
    start = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    proc = _start(argv, what=what, own_group=own_group, env=env, cwd=cwd, stdin=stdin,
                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    deadline = start + timeout if timeout else None
    # The deadline must hold while the command is silent too: reading its
    # output blocks, so a timer kills it when time is up.
    watchdog = threading.Timer(timeout, _kill, (proc, own_group)) if timeout else None
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
                _kill(proc, own_group)
                break
        returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()) if deadline else None)
    except subprocess.TimeoutExpired:
        _end(proc, own_group)
        returncode = 124
    except BaseException:
        _end(proc, own_group)
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
    timed_out = bool(deadline and time.monotonic() > deadline and returncode != 0)
    if timed_out:
        returncode = 124
        tail.append(f"(timed out after {timeout} s)")
    seconds = time.monotonic() - start
    LOG.debug("exit %d after %.2fs: %s", returncode, seconds, argv[0])
    text = "\n".join(tail)
    result = Result(argv, returncode, text, "", seconds)
    if check and timed_out:
        raise CommandTimeout(argv, timeout or 0, output_tail=text, what=what)
    if check and returncode != 0:
        raise CommandError(argv, returncode, text, what=what)
    return result


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent goes, however it goes
    (a SIGKILLed parent runs no cleanup of its own)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _start(argv: list[str], *, what: str | None, own_group: bool,
           env: Mapping[str, str] | None, **popen: Any) -> subprocess.Popen:
    """Start a command. With ``own_group`` it gets a session (so a process
    group) of its own: a Ctrl-C on the terminal reaches only us, ``_kill``
    reaches everything it started, and it dies with this process even if
    this process is SIGKILLed. Without, it shares our process group, so
    signals sent to the group (a Ctrl-C, a kill of the whole group) reach
    it and its children directly."""
    try:
        return subprocess.Popen(argv, env=dict(env) if env is not None else None,
                                start_new_session=own_group,
                                preexec_fn=_die_with_parent if own_group else None, **popen)
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, f"command not found: {argv[0]}", what=what) from exc


def _kill(proc: subprocess.Popen, own_group: bool) -> None:
    """SIGKILL the command: its whole process group when it has its own."""
    if not own_group:
        proc.kill()
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _end(proc: subprocess.Popen, own_group: bool) -> int:
    """Kill the command (see ``_kill``) and reap it; its exit status."""
    _kill(proc, own_group)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a D-state process
        proc.kill()
        return proc.wait()


def _communicate_until(proc: subprocess.Popen, input: str | bytes | None,
                       timeout: float | None, own_group: bool) -> tuple[Any, Any]:
    """communicate() for a command without output pipes. Given a timeout,
    Popen polls for the command's end with growing sleeps, which adds up to
    tens of milliseconds to every short command; a timer that kills the
    command when time is up lets us wait for it blocking instead."""
    if timeout is None:
        return proc.communicate(input)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        _kill(proc, own_group)
    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        outputs = proc.communicate(input)
    finally:
        watchdog.cancel()
    if expired.is_set():
        raise subprocess.TimeoutExpired(proc.args, timeout)
    return outputs


@contextlib.contextmanager
def _output(log_file: str | os.PathLike | None) -> Iterator[tuple[Any, Any, int]]:
    """Where a command's output goes: pipes, or appended to ``log_file``
    (stderr with stdout); also where in that file this command's part starts."""
    if log_file is None:
        yield subprocess.PIPE, subprocess.PIPE, 0
        return
    with open(log_file, "ab") as handle:
        yield handle, subprocess.STDOUT, handle.tell()


def _file_tail(path: str | os.PathLike, offset: int, lines: int = TAIL_LINES) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(offset, os.fstat(handle.fileno()).st_size - 64 * 1024))
        return _tail_text(handle.read(), lines=lines)


class Spawned:
    """A command started in a process group of its own (or, with
    ``own_group=False``, in ours).

    ``kill()`` ends the whole group and reaps the command; leaving a ``with``
    block does the same, so an exception or Ctrl-C leaves nothing running.
    """

    def __init__(self, argv: list[str], proc: subprocess.Popen, what: str | None,
                 own_group: bool = True) -> None:
        self.argv = argv
        self.proc = proc
        self.what = what or argv[0]
        self.own_group = own_group
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

    def wait(self) -> int:
        """Wait for the command to end; its exit status."""
        return self.proc.wait()

    def send_signal(self, signum: int) -> None:
        """Pass a signal on to the command (not to its group)."""
        try:
            self.proc.send_signal(signum)
        except ProcessLookupError:
            pass

    def signal_group(self, signum: int) -> None:
        """Send a signal to everything the command started (its process
        group), as a Ctrl-C on a terminal would; only to the command itself
        when it shares our group."""
        if not self.own_group:
            self.send_signal(signum)
            return
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> int:
        """SIGKILL the command (its process group, if it has its own), reap
        it, close the pipes."""
        returncode = _end(self.proc, self.own_group)
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
          what: str | None = None, own_group: bool = True,
          pass_fds: Sequence[int] = ()) -> Spawned:
    """Start a long-running command (a VM, the build proper) that the caller
    talks to, waits for or ends; ``own_group`` as for ``run``. ``pass_fds``
    stay open in the command (a pipe it talks to us through besides its
    standard streams)."""
    argv = [os.fspath(a) for a in argv]
    LOG.debug("spawn: %s", " ".join(argv))
    proc = _start(argv, what=what, own_group=own_group, env=env, cwd=cwd, stdin=stdin,
                  stdout=stdout, stderr=stderr, pass_fds=tuple(pass_fds))
    return Spawned(argv, proc, what, own_group)


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
