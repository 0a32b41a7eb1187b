"""``dib test -j N``: cases side by side.

A case cannot share a process with another one: a build points the
process's stdout and stderr at the case's log and installs signal handlers
while its build proper runs. So each case runs in a worker of its own,
``python -m dib.testing.parallel REQUEST RESULT``, in a session (so a process
group) of its own, and hands its ``CaseResult`` back as JSON.

Stopping: a Ctrl-C (or SIGTERM) of ``dib test``, or any error in the
scheduler, sends SIGINT to every running case's process group - what a
Ctrl-C on the terminal does to a case run in the foreground, so a build
cleans up as it does then (its mounts live in a private mount namespace,
its workspace is removed) - and SIGKILLs the groups still there after
``STOP_GRACE`` seconds (or at a second Ctrl-C).

Results come back to the caller, and ``on_result`` is called, in the order
the jobs were given, whatever order they finish in.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from dib import runner
from dib.errors import DibError
from dib.testing.functional import ERROR, Case, CaseResult, Options

STOP_GRACE = 60.0
POLL_SECONDS = 0.1
WORKER_TAIL = 40


@dataclass
class BuildJob:
    """Build one test-element (``functional.run_case``)."""

    case: Case
    options: Options

    @property
    def element(self) -> str:
        return self.case.element

    @property
    def name(self) -> str:
        return self.case.name

    @property
    def kind(self) -> str:
        return "functional"

    @property
    def echo(self) -> bool:
        return self.options.verbose

    def request(self) -> dict[str, Any]:
        options = {f.name: getattr(self.options, f.name) for f in fields(self.options)}
        options["environ"] = dict(options["environ"])
        return {"kind": "build", "case": _jsonable(asdict(self.case)),
                "options": _jsonable(options)}


@dataclass
class UnitJob:
    """Run one element's ``tests/`` (``functional.run_unit``)."""

    element: str
    path: Path
    log_dir: Path | None = None

    name = "unit"
    kind = "unit"
    echo = False

    def request(self) -> dict[str, Any]:
        return {"kind": "unit", "element": self.element, "path": str(self.path),
                "log_dir": str(self.log_dir) if self.log_dir else None}


Job = BuildJob | UnitJob


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}


# -- the scheduler -------------------------------------------------------------------


@dataclass
class _Running:
    worker: runner.Spawned
    result_path: Path
    output_path: Path


def run_jobs(jobs: Sequence[Job], parallel: int,
             on_result: Callable[[CaseResult], None] | None = None, *,
             start_order: Sequence[int] | None = None) -> list[CaseResult]:
    """Run ``jobs``, at most ``parallel`` at once, started in ``start_order``
    (default: as listed); their results in the order of ``jobs``."""
    results: list[CaseResult | None] = [None] * len(jobs)
    reported = 0
    pending = collections.deque(range(len(jobs)) if start_order is None else start_order)
    running: dict[int, _Running] = {}
    with tempfile.TemporaryDirectory(prefix="dib-test-jobs-") as scratch, \
            _sigterm_interrupts():
        try:
            while pending or running:
                while pending and len(running) < max(1, parallel):
                    index = pending.popleft()
                    running[index] = _start(jobs[index], Path(scratch), index)
                for index in _wait_for_any(running):
                    results[index] = _collect(jobs[index], running.pop(index))
                while reported < len(jobs) and results[reported] is not None:
                    if on_result:
                        on_result(results[reported])   # type: ignore[arg-type]
                    reported += 1
        except BaseException:
            if running:
                print(f"dib test: stopping {len(running)} running case(s)", file=sys.stderr,
                      flush=True)
            _stop_all([r.worker for r in running.values()])
            raise
    return [r for r in results if r is not None]


def _start(job: Job, scratch: Path, index: int) -> _Running:
    request_path = scratch / f"{index}.request.json"
    request_path.write_text(json.dumps(job.request()))
    result_path = scratch / f"{index}.result.json"
    output_path = scratch / f"{index}.output"
    # The build's own output goes to the case's log; a worker prints only
    # when something is wrong with it (or the build's with --show-log).
    out = None if job.echo else open(output_path, "wb")
    try:
        worker = runner.spawn([sys.executable, "-m", __name__, str(request_path),
                               str(result_path)], stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT if out else None, own_group=True,
                              what=f"the worker for {job.element}/{job.name}")
    finally:
        if out is not None:
            out.close()
    return _Running(worker, result_path, output_path)


def _wait_for_any(running: dict[int, _Running]) -> list[int]:
    while True:
        done = [i for i, r in running.items() if r.worker.poll() is not None]
        if done or not running:
            return done
        time.sleep(POLL_SECONDS)


def _collect(job: Job, done: _Running) -> CaseResult:
    status = done.worker.kill()      # reaped already; ends anything it left in its group
    try:
        data = json.loads(done.result_path.read_text())
        return CaseResult(**data)
    except (OSError, ValueError, TypeError):
        tail = _tail(done.output_path)
        return CaseResult(job.element, job.name, ERROR, kind=job.kind, started=time.time(),
                          reason=f"the case's worker process ended with status {status} "
                                 "without a result",
                          details=tail, output=tail)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-WORKER_TAIL:])


def _stop_all(workers: Sequence[runner.Spawned], grace: float = STOP_GRACE) -> None:
    """SIGINT every worker's group, give them ``grace`` seconds to clean up,
    then SIGKILL what is left (a second Ctrl-C cuts the wait short)."""
    for worker in workers:
        worker.signal_group(signal.SIGINT)
    deadline = time.monotonic() + grace
    try:
        while time.monotonic() < deadline and any(w.poll() is None for w in workers):
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        pass
    finally:
        for worker in workers:
            worker.kill()


class _Interrupted(KeyboardInterrupt):
    """SIGTERM, handled as a Ctrl-C."""


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise _Interrupted()


class _sigterm_interrupts:
    """While running cases, SIGTERM stops them as a Ctrl-C does (signal
    handlers belong to the main thread; elsewhere this does nothing)."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, _raise_interrupt)

    def __exit__(self, *exc_info: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


# -- the worker ----------------------------------------------------------------------


def _options_from(data: dict[str, Any]) -> Options:
    values = dict(data)
    values["cache_dir"] = Path(values["cache_dir"])
    if values.get("log_dir"):
        values["log_dir"] = Path(values["log_dir"])
    return Options(**values)


def run_request(request: dict[str, Any]) -> CaseResult:
    """What a worker does with its request."""
    from dib.testing import functional as ft
    if request["kind"] == "unit":
        from dib.elements.model import Element
        log_dir = Path(request["log_dir"]) if request.get("log_dir") else None
        return ft.run_unit(Element(request["element"], Path(request["path"])),
                           log_dir=log_dir)
    case = Case(**{k: Path(v) if k in ("path", "element_path") else v
                   for k, v in request["case"].items()})
    return ft.run_case(case, _options_from(request["options"]))


def worker_main(argv: Sequence[str]) -> int:
    request_path, result_path = argv
    # SIGTERM unwinds like a Ctrl-C, so the case's clean-up runs.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    request = json.loads(Path(request_path).read_text())
    try:
        result = run_request(request)
    except KeyboardInterrupt:
        return 130
    except DibError as exc:       # e.g. the case is being run by another 'dib test'
        element, name = _names(request)
        result = CaseResult(element, name, ERROR, started=time.time(),
                            kind="unit" if request["kind"] == "unit" else "functional",
                            reason=exc.message.splitlines()[0], details=str(exc))
    partial = Path(result_path + ".part")
    partial.write_text(json.dumps(asdict(result)))
    os.replace(partial, result_path)
    return 0


def _names(request: dict[str, Any]) -> tuple[str, str]:
    if request["kind"] == "unit":
        return request["element"], "unit"
    return request["case"]["element"], request["case"]["name"]


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
