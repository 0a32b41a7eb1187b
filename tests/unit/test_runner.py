"""dib.runner.spawn: long-running commands that never outlive their owner."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dib import runner
from dib.errors import CommandError, CommandTimeout


def _gone(pid: int, within: float = 5.0) -> bool:
    """True once ``pid`` no longer exists (or is a zombie nobody reaps yet)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def _group_members(pgid: int, *, gone_within: float = 0.0) -> list[int]:
    """Live members of process group ``pgid``; with ``gone_within``, wait up to
    that long for the group to empty (SIGKILL takes a moment to land)."""
    deadline = time.monotonic() + gone_within
    while True:
        members = _live_members(pgid)
        if not members or time.monotonic() >= deadline:
            return members
        time.sleep(0.05)


def _live_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def test_kill_ends_the_whole_process_group():
    spawned = runner.spawn(["sh", "-c", "sleep 300 & sleep 300 & echo started; wait"])
    assert spawned.stdout.readline() == b"started\n"
    assert len(_group_members(spawned.pid)) == 3
    assert spawned.kill() == -9
    assert _group_members(spawned.pid, gone_within=5.0) == []


def test_leaving_the_with_block_on_an_error_kills_it():
    with pytest.raises(RuntimeError):
        with runner.spawn(["sleep", "300"]) as spawned:
            pid = spawned.pid
            raise RuntimeError("boom")
    assert _gone(pid)


def test_child_dies_when_its_owner_is_sigkilled():
    owner = subprocess.run(
        [sys.executable, "-c",
         "import os, signal\n"
         "from dib import runner\n"
         "s = runner.spawn(['sleep', '300'])\n"
         "print(s.pid, flush=True)\n"
         "os.kill(os.getpid(), signal.SIGKILL)\n"],
        capture_output=True, text=True, timeout=30)
    assert owner.returncode == -9
    assert _gone(int(owner.stdout.strip()))


def test_own_session_and_stdin_pipe():
    with runner.spawn(["sh", "-c", "ps -o sid= -p $$; read line; echo got $line"],
                      stdin=subprocess.PIPE) as spawned:
        assert int(spawned.stdout.readline()) == spawned.pid
        spawned.stdin.write(b"hello\n")
        spawned.stdin.flush()
        assert spawned.stdout.readline() == b"got hello\n"


def test_missing_command_is_a_command_error():
    with pytest.raises(CommandError, match="command not found: no-such-tool-here"):
        runner.spawn(["no-such-tool-here"])


def _background_pid(tmp_path) -> tuple[list[str], Path]:
    """A shell that starts a long sleep in the background, notes its pid and waits."""
    pidfile = tmp_path / "pid"
    return ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], pidfile


def _wait_for(path, within: float = 5.0) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def test_timeout_in_own_group_kills_what_the_command_started(tmp_path):
    argv, pidfile = _background_pid(tmp_path)
    with pytest.raises(CommandTimeout) as caught:
        runner.run(argv, timeout=0.5, own_group=True)
    assert caught.value.returncode == 124 and caught.value.timeout == 0.5
    assert _gone(_wait_for(pidfile))


def test_interrupted_run_in_own_group_kills_what_the_command_started(tmp_path):
    argv, pidfile = _background_pid(tmp_path)

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run(argv, own_group=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert _gone(_wait_for(pidfile))


def test_log_file_gets_both_streams_and_the_result_its_own_tail(tmp_path):
    log = tmp_path / "log"
    runner.run(["sh", "-c", "echo first"], log_file=log)
    result = runner.run(["sh", "-c", "echo out; echo err >&2; echo more"], log_file=log)
    assert log.read_text() == "first\nout\nerr\nmore\n"
    assert result.stdout == "out\nerr\nmore"
    with pytest.raises(CommandError, match="went wrong"):
        runner.run(["sh", "-c", "echo went wrong; exit 3"], log_file=log)


def test_stdin_and_input():
    assert runner.run(["cat"], stdin=subprocess.DEVNULL).stdout == ""
    assert runner.run(["cat"], input="fed\n").stdout == "fed\n"


def test_timeout_with_a_log_file(tmp_path):
    argv, pidfile = _background_pid(tmp_path)
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        runner.run(argv, timeout=0.5, own_group=True, log_file=tmp_path / "log")
    assert time.monotonic() - started < 5
    assert _gone(_wait_for(pidfile))
    assert runner.run(["true"], timeout=5, log_file=tmp_path / "log").returncode == 0
