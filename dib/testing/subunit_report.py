"""``dib test --subunit``: the results as a subunit v2 stream.

Subunit is what OpenStack's test tooling reads (stestr, subunit-trace,
subunit2html, subunit2junitxml), so a CI job that already collects it picks
up element tests unchanged. The stream is written with python-subunit, the
format's reference implementation.

Each case is one test, its id ``<kind>.<element>.<case>`` (the JUnit
report's classname and name, e.g. ``functional.growroot.resize``,
``functional.growroot.resize[noble]`` with ``--release``, or
``unit.growroot.unit``): an ``inprogress`` event when it started, then its
outcome when it ended. Subunit has no "error" status: an error (a case
that could not be built as given) is a failure tagged ``error``. Attached
files: ``reason`` (why it failed or was skipped) and, for a failure, ``log``
(the build's, or the unit run's, whole output).
"""
from __future__ import annotations

import datetime
from typing import BinaryIO, Sequence

from dib.testing.functional import ERROR, FAIL, PASS, SKIP, CaseResult

CHUNK = 64 * 1024      # a packet must stay under 4 MiB; logs can be bigger
TEXT = "text/plain; charset=utf8"
STATUS = {PASS: "success", FAIL: "fail", ERROR: "fail", SKIP: "skip"}


def test_id(result: CaseResult) -> str:
    return f"{result.kind}.{result.element}.{result.label}"


def write_subunit(results: Sequence[CaseResult], stream: BinaryIO) -> None:
    """Write every result to ``stream`` (binary), in order."""
    from subunit.v2 import StreamResultToBytes
    out = StreamResultToBytes(stream)
    for result in results:
        _write_case(out, result)
    stream.flush()


def _write_case(out, result: CaseResult) -> None:
    name = test_id(result)
    tags = _tags(result)
    start = _when(result.started)
    end = start + datetime.timedelta(seconds=max(0.0, result.seconds))
    out.status(test_id=name, test_status="inprogress", test_tags=tags, timestamp=start)
    attachments = []
    reason = _reason(result)
    if reason:
        attachments.append(("reason", reason))
    if not result.ok and result.output:
        attachments.append(("log", result.output))
    for file_name, text in attachments:
        _attach(out, name, file_name, text, end)
    out.status(test_id=name, test_status=STATUS[result.status], test_tags=tags,
               timestamp=end)


def _tags(result: CaseResult) -> set[str]:
    tags = {result.kind}
    if result.status == ERROR:
        tags.add("error")
    if result.expected_failure:
        tags.add("expected-failure")
    return tags


def _reason(result: CaseResult) -> str:
    if result.status == PASS:
        return result.reason
    lines = [f"{result.status}: {result.reason}" if result.reason else result.status]
    if result.hook and result.hook not in result.reason:
        lines.append(f"in hook {result.hook}")
    if result.details:
        lines.append(result.details)
    if result.log:
        lines.append(f"(full log: {result.log})")
    return "\n".join(lines) + "\n"


def _attach(out, name: str, file_name: str, text: str, when: datetime.datetime) -> None:
    data = text.encode("utf-8", errors="replace")
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    for i, chunk in enumerate(chunks):
        out.status(test_id=name, file_name=file_name, file_bytes=chunk, mime_type=TEXT,
                   eof=i == len(chunks) - 1, timestamp=when)


def _when(epoch: float) -> datetime.datetime:
    if epoch <= 0:
        return datetime.datetime.now(datetime.timezone.utc)
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
