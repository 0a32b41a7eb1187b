"""A failed build says why, in its JSON report: which element's hook of which
phase failed, with what exit status, and whether it ran out of time."""
from __future__ import annotations

import json
import os
import shutil
import time
from types import SimpleNamespace

import pytest

from dib.config.build import BuildConfig
from dib.elements.discovery import shipped_hooks_dir
from dib.errors import DibError, HookError
from dib.pipeline.builder import Builder
from dib.pipeline.report import FailureReport
from dib.plan import phase
from dib.runtime.phases import PhaseContext, run_phase
from dib.runtime.workspace import Workspace


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    ws = Workspace.create(tmp_path / "work")
    (ws.hooks / "bin").mkdir()
    shutil.copy2(shipped_hooks_dir() / "dib-run-parts", ws.hooks / "bin")
    return ws


def host_hook(ws: Workspace, phase_name: str, name: str, body: str) -> None:
    hook = ws.hooks / f"{phase_name}.d" / name
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/bash\nset -eu\n" + body + "\n")
    hook.chmod(0o755)


def context(ws: Workspace, **kwargs) -> PhaseContext:
    return PhaseContext(workspace=ws, env={"PATH": os.environ["PATH"]},
                        hook_elements={"root/20-broken": "breaker"}, **kwargs)


def test_a_failing_hook_is_named_with_its_element_phase_and_status(workspace):
    host_hook(workspace, "root", "10-fine", "true")
    host_hook(workspace, "root", "20-broken", "echo 'cannot go on' >&2\nexit 3")
    with pytest.raises(HookError) as caught:
        run_phase(context(workspace), phase("root"))
    failure = FailureReport.from_error(caught.value)
    assert (failure.element, failure.phase, failure.hook, failure.exit_status,
            failure.timed_out) == ("breaker", "root", "20-broken", 3, False)
    assert "cannot go on" in failure.output_tail
    assert failure.message == "hook root/20-broken of element 'breaker' failed with exit status 3"


def test_a_command_past_the_hook_timeout_is_reported_as_timed_out(workspace):
    with pytest.raises(HookError) as caught:
        run_phase(context(workspace, hook_timeout=0.5), phase("root"), argv=["sleep", "30"])
    failure = FailureReport.from_error(caught.value)
    assert failure.timed_out and failure.exit_status == 124


def test_a_timed_out_hook_is_killed_with_what_it_started(workspace, tmp_path):
    pidfile = tmp_path / "sleeper.pid"
    # the hook lets go of the output pipe, so nothing but the kill ends its child
    host_hook(workspace, "root", "20-broken",
              f"exec >/dev/null 2>&1\nsleep 300 &\necho $! > {pidfile}\nwait")
    with pytest.raises(HookError) as caught:
        run_phase(context(workspace, hook_timeout=1), phase("root"))
    assert caught.value.timed_out
    sleeper = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleeper), "the hook's child outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_another_error_is_reported_by_its_message():
    failure = FailureReport.from_error(DibError("the disk is full", hint="free some"))
    assert failure.message == "the disk is full"
    assert failure.element is None and failure.hook is None and not failure.timed_out


def test_the_report_of_a_failed_build_is_written_with_its_failure(workspace, tmp_path,
                                                                   monkeypatch):
    report = tmp_path / "report.json"
    config = BuildConfig(image_name=str(tmp_path / "image"), no_cache=True,
                         json_report=str(report))
    prepared = SimpleNamespace(config=config, resolution=SimpleNamespace(names=["breaker"]))
    error = HookError("breaker", "install", "50-x", 7, "oops", timed_out=True)

    def fail_at_setup(_builder):
        raise error
    monkeypatch.setattr(Builder, "_setup", fail_at_setup)
    with pytest.raises(HookError):
        Builder(prepared, workspace).run()
    written = json.loads(report.read_text())
    assert written["failure"] == {
        "message": "hook install/50-x of element 'breaker' failed with exit status 7",
        "element": "breaker", "phase": "install", "hook": "50-x", "exit_status": 7,
        "timed_out": True, "output_tail": "oops"}
    assert written["elements"] == ["breaker"]
