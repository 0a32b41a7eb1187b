"""``dib test -j N``: cases side by side, each in a process group of its own,
results in the order the cases were listed, and an interruption leaves
nothing running. No root: unit cases whose tests wait for each other."""
from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from subunit import ByteStreamToStreamResult
from testtools import StreamToDict

from dib.cli.main import main as dib_main
from dib.testing import functional as ft
from dib.testing.parallel import UnitJob, run_jobs

# Each test announces itself, then waits for the other one: with one case
# at a time the first would wait in vain and fail.
MEET = """
import os
import time
from pathlib import Path

SPOT = Path(os.environ["DIB_TEST_MEET"])


def wait_for(name):
    seconds = 2 if (SPOT / "short").exists() else 180
    deadline = time.monotonic() + seconds
    while not (SPOT / name).exists():
        assert time.monotonic() < deadline, f"{{name}} never showed up"
        time.sleep(0.05)


def test_meet():
    (SPOT / "{me}.started").write_text("")
    wait_for("{other}.started")
    {then}
"""

# Runs until killed, after noting its pid and its child's (a sleep).
FOREVER = """
import os
import subprocess
import time
from pathlib import Path

SPOT = Path(os.environ["DIB_TEST_MEET"])


def test_forever():
    child = subprocess.Popen(["sleep", "300"])
    (SPOT / "{me}.pids").write_text(f"{{os.getpid()}} {{child.pid}}")
    time.sleep(300)
"""


@pytest.fixture
def meeting(elements_env, tmp_path, monkeypatch):
    spot = tmp_path / "spot"
    spot.mkdir()
    monkeypatch.setenv("DIB_TEST_MEET", str(spot))
    # "first" ends last: it waits for "second" to finish its test.
    elements_env.add("first", files={"tests/test_first.py": MEET.format(
        me="first", other="second", then='wait_for("second.done")\n    time.sleep(1)')})
    elements_env.add("second", files={"tests/test_second.py": MEET.format(
        me="second", other="first", then='(SPOT / "second.done").write_text("")')})
    return elements_env, spot


def parse(data: bytes) -> dict[str, dict]:
    tests: list[dict] = []
    result = StreamToDict(tests.append)
    result.startTestRun()
    ByteStreamToStreamResult(io.BytesIO(data), non_subunit_name="stdout").run(result)
    result.stopTestRun()
    return {t["id"]: t for t in tests}


def test_two_cases_run_at_once_and_report_in_listed_order(meeting, tmp_path, capsys):
    stream = tmp_path / "out.subunit"
    assert dib_main(["test", "--unit", "-j", "2", "first", "second",
                     "--subunit", str(stream), "--json", str(tmp_path / "r.json")]) == 0
    captured = capsys.readouterr()
    progress = [line.split()[1] for line in captured.err.splitlines()
                if line.startswith("PASS")]
    assert progress == ["first/unit", "second/unit"]
    table = [line.split()[0] for line in captured.out.splitlines()
             if line.endswith("passed") or "/unit" in line]
    assert table == ["first/unit", "second/unit"]
    tests = parse(stream.read_bytes())
    assert list(tests) == ["unit.first.unit", "unit.second.unit"]
    (a_start, a_end), (b_start, b_end) = (sorted(t["timestamps"]) for t in tests.values())
    assert a_start < b_end and b_start < a_end, "the cases did not overlap"
    assert b_end < a_end     # listed first, finished last: order is not finishing order


def test_one_job_runs_cases_one_by_one(meeting, capsys):
    _tree, spot = meeting
    (spot / "short").write_text("")      # the vain wait gives up after 2 s
    assert dib_main(["test", "--unit", "-j", "1", "first", "second"]) == 1
    results = [line.split()[:2] for line in capsys.readouterr().err.splitlines()
               if "/unit" in line]
    # first waited for second, which only started once first had ended.
    assert results == [["FAIL", "first/unit"], ["PASS", "second/unit"]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits for its parent to reap it.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_interruption_stops_every_running_case_and_its_children(elements_env, tmp_path,
                                                                 monkeypatch):
    spot = tmp_path / "spot"
    spot.mkdir()
    monkeypatch.setenv("DIB_TEST_MEET", str(spot))
    jobs = []
    for name in ("hang-a", "hang-b"):
        path = elements_env.add(name, files={f"tests/test_{name.replace('-', '_')}.py":
                                             FOREVER.format(me=name)})
        jobs.append(UnitJob(name, path))
    pid_files = [spot / "hang-a.pids", spot / "hang-b.pids"]

    def interrupt_when_both_run() -> None:
        # well before the cases' 300 s are up, however slowly a loaded
        # machine starts their pytest
        deadline = time.monotonic() + 240
        while not all(p.exists() and p.read_text() for p in pid_files):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        # A real signal, as a CI runner stopping the job sends; run_jobs
        # handles SIGTERM like a Ctrl-C.
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=interrupt_when_both_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, 2)
    pids = [int(pid) for p in pid_files for pid in p.read_text().split()]
    assert len(pids) == 4
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if _alive(pid)] == []


def test_a_worker_that_dies_is_an_error_result(elements_env, monkeypatch):
    path = elements_env.add("crashy", files={"tests/test_crashy.py": "def test_x():\n"
                                                                     "    pass\n"})
    # A request the worker cannot read: it dies with a traceback, no result.
    job = UnitJob("crashy", path)
    monkeypatch.setattr(UnitJob, "request", lambda self: {"kind": "unit"})
    [result] = run_jobs([job], 2)
    assert result.status == ft.ERROR and "without a result" in result.reason
    assert "KeyError" in result.details


NOTE_START = """
import os
from pathlib import Path


def test_note():
    with open(Path(os.environ["DIB_TEST_MEET"]) / "started", "a") as log:
        log.write("{me}\\n")
"""


def test_cases_start_in_the_order_given_and_report_in_the_listed_one(elements_env, tmp_path,
                                                                      monkeypatch):
    spot = tmp_path / "spot"
    spot.mkdir()
    monkeypatch.setenv("DIB_TEST_MEET", str(spot))
    jobs = [UnitJob(name, elements_env.add(name, files={
        f"tests/test_{name}.py": NOTE_START.format(me=name)})) for name in ("early", "late")]
    results = run_jobs(jobs, 1, start_order=[1, 0])
    assert (spot / "started").read_text().split() == ["late", "early"]
    assert [r.element for r in results] == ["early", "late"]
    assert all(r.status == "pass" for r in results)
