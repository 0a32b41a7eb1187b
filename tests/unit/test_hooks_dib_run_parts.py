"""dib-run-parts: order, naming rule, environment.d, failures, events."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

HOOKS = Path(__file__).resolve().parents[2] / "hooks"
RUN_PARTS = str(HOOKS / "dib-run-parts")


def make_hook(path: Path, body: str, mode=0o755):
    path.write_text("#!/bin/bash\nset -eu\n" + body + "\n")
    path.chmod(mode)


@pytest.fixture
def phase(tmp_path):
    d = tmp_path / "hooks" / "install.d"
    d.mkdir(parents=True)
    return d


def run(phase, *args, env=None):
    full = {"PATH": os.environ["PATH"], "HOME": str(phase.parent),
            "LOG": str(phase.parent / "log")}
    full.update(env or {})
    return subprocess.run([RUN_PARTS, *args, str(phase)], capture_output=True, text=True,
                          env=full)


def log_lines(phase):
    log = phase.parent / "log"
    return log.read_text().split() if log.exists() else []


def test_runs_in_sort_n_order_and_skips_bad_names(phase):
    for name in ("10-b", "9-a", "100-c", "10-a", "foo.sh", "50-notexec", "Zed"):
        make_hook(phase / name, f'echo {name} >> "$LOG"')
    (phase / "50-notexec").chmod(0o644)
    proc = run(phase)
    assert proc.returncode == 0, proc.stderr
    # sort -n: a name without a leading number counts as 0.
    assert log_lines(phase) == ["Zed", "9-a", "10-a", "10-b", "100-c"]


def test_list(phase):
    for name in ("20-x", "10-y", "x.sh"):
        make_hook(phase / name, "exit 0")
    proc = run(phase, "--list")
    assert proc.stdout.split() == [f"{phase}/10-y", f"{phase}/20-x"]


def test_symlinks_followed(phase, tmp_path):
    target = tmp_path / "real"
    make_hook(target, 'echo linked >> "$LOG"')
    (phase / "10-link").symlink_to(target)
    assert run(phase).returncode == 0
    assert log_lines(phase) == ["linked"]


def test_custom_regex(phase):
    make_hook(phase / "10-a.sh", 'echo dotted >> "$LOG"')
    assert run(phase, env={"RUN_PARTS_REGEX": r"^[0-9A-Za-z_.-]+$"}).returncode == 0
    assert log_lines(phase) == ["dotted"]


def test_environment_d_sourced_in_order_in_subshell(phase):
    envd = phase.parent / "environment.d"
    envd.mkdir()
    (envd / "10-first.bash").write_text("export DIB_X=first\nexport DIB_Y=one\n")
    (envd / "20-second").write_text("export DIB_X=second\n")
    (envd / "bad name").write_text("export DIB_X=never\n")
    make_hook(phase / "10-show", 'echo "$DIB_X-$DIB_Y" >> "$LOG"')
    proc = run(phase)
    assert proc.returncode == 0, proc.stderr
    assert log_lines(phase) == ["second-one"]
    # The sourcing happened in a subshell: the runner's profiling block still
    # prints and nothing of DIB_X leaks into its own output lines.
    assert "Sourcing environment file" in proc.stderr


def test_environment_does_not_leak_between_runs(phase):
    envd = phase.parent / "environment.d"
    envd.mkdir()
    (envd / "10-x").write_text("export DIB_LEAK=yes\n")
    make_hook(phase / "10-show", 'echo "${DIB_LEAK:-no}" >> "$LOG"')
    run(phase)
    assert os.environ.get("DIB_LEAK") is None
    assert log_lines(phase) == ["yes"]


def test_stops_at_first_failure_with_its_status(phase):
    make_hook(phase / "10-ok", 'echo ok >> "$LOG"')
    make_hook(phase / "20-fail", 'echo fail >> "$LOG"; exit 7')
    make_hook(phase / "30-never", 'echo never >> "$LOG"')
    proc = run(phase)
    assert proc.returncode == 7
    assert log_lines(phase) == ["ok", "fail"]
    assert "20-fail failed with exit status 7" in proc.stderr
    assert "PROFILING" in proc.stderr


def test_profiling_block(phase):
    make_hook(phase / "10-a", "true")
    make_hook(phase / "20-b", "true")
    proc = run(phase)
    lines = [line.split() for line in proc.stderr.splitlines()]
    assert ["dib-run-parts", "Target:", "install.d"] in lines
    timed = {parts[1]: float(parts[2]) for parts in lines
             if len(parts) == 3 and parts[1] in ("10-a", "20-b")
             and parts[2].replace(".", "", 1).isdigit()}
    assert set(timed) == {"10-a", "20-b"}
    assert "END PROFILING" in proc.stderr


def test_events_file(phase, tmp_path):
    events = tmp_path / "events.jsonl"
    make_hook(phase / "10-ok", "true")
    make_hook(phase / "20-bad", "exit 3")
    proc = run(phase, env={"DIB_RUN_PARTS_EVENTS": str(events)})
    assert proc.returncode == 3
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(r["event"], r["hook"]) for r in records] == [
        ("start", "10-ok"), ("end", "10-ok"), ("start", "20-bad"), ("end", "20-bad")]
    assert records[1]["exit"] == 0 and records[3]["exit"] == 3
    assert all(isinstance(r["time"], float) for r in records)
    assert records[3]["seconds"] >= 0


def test_timing_needs_no_awk(phase, tmp_path):
    # A chroot may lack awk; the timing is shell arithmetic.
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("bash", "date", "find", "sort", "mktemp", "rm", "grep", "basename", "sleep"):
        (tools / tool).symlink_to(subprocess.run(["sh", "-c", f"command -v {tool}"],
                                                 capture_output=True, text=True).stdout.strip())
    events = tmp_path / "events.jsonl"
    make_hook(phase / "10-nap", "sleep 0.2")
    proc = run(phase, env={"PATH": str(tools), "DIB_RUN_PARTS_EVENTS": str(events)})
    assert proc.returncode == 0, proc.stderr
    assert "not found" not in proc.stderr
    (end,) = [json.loads(line) for line in events.read_text().splitlines()
              if '"end"' in line]
    assert 0.2 <= end["seconds"] < 5


def test_debug_trace_reports_ignored(phase):
    make_hook(phase / "foo.sh", "true")
    make_hook(phase / "10-noexec", "true", mode=0o644)
    proc = run(phase, env={"DIB_DEBUG_TRACE": "1"})
    assert "foo.sh" in proc.stderr and "10-noexec" in proc.stderr


def test_missing_directory_is_usage_error(tmp_path):
    proc = subprocess.run([RUN_PARTS, str(tmp_path / "nope")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "usage" in proc.stderr


def test_empty_phase(phase):
    proc = run(phase)
    assert proc.returncode == 0


def test_through_and_after_split_the_phase_in_two_parts(phase):
    for name in ("30-c", "10-a", "20-b", "05-first"):
        make_hook(phase / name, f'echo {name} >> "$LOG"')
    first = run(phase, "--through", "10-a")
    assert first.returncode == 0, first.stderr
    assert log_lines(phase) == ["05-first", "10-a"]
    second = run(phase, "--after", "10-a")
    assert second.returncode == 0, second.stderr
    # Together, every hook once, in the order of a whole run.
    assert log_lines(phase) == ["05-first", "10-a", "20-b", "30-c"]
    assert run(phase, "--list", "--after", "20-b").stdout.split() == [f"{phase}/30-c"]


def test_after_the_last_hook_runs_nothing(phase):
    make_hook(phase / "10-only", 'echo ran >> "$LOG"')
    proc = run(phase, "--after", "10-only")
    assert proc.returncode == 0, proc.stderr
    assert log_lines(phase) == []


def test_a_bound_that_is_no_hook_fails_and_runs_nothing(phase):
    make_hook(phase / "10-real", 'echo ran >> "$LOG"')
    proc = run(phase, "--through", "10-missing")
    assert proc.returncode == 1
    assert "no hook 10-missing" in proc.stderr
    assert log_lines(phase) == []


def test_through_and_after_together_is_a_usage_error(phase):
    make_hook(phase / "10-real", 'echo ran >> "$LOG"')
    proc = run(phase, "--through", "10-real", "--after", "10-real")
    assert proc.returncode == 1 and "usage" in proc.stderr
    assert log_lines(phase) == []
