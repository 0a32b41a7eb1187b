"""``dib test --subunit``: the stream python-subunit (so stestr, subunit-trace,
subunit2html) reads back, with every case, its status, times and failure log.
No root, no network: unit cases of a small element tree, and a build case
whose metadata is broken (an error before anything is built)."""
from __future__ import annotations

import io

import pytest
from subunit import ByteStreamToStreamResult
from testtools import StreamToDict

from dib.cli.main import main as dib_main

HOOK = """#!/bin/bash
set -eu -o pipefail
echo "${GREETING:-hello}" > "$TARGET_ROOT/etc/greeting"
"""

HOOK_TEST = """
from pathlib import Path

from dib.testing import HookTestCase


class TestGreeting(HookTestCase):
    element = Path(__file__).resolve().parents[1]
    stub_commands = ()

    def test_greeting(self):
        self.assertHookSucceeded(self.run_hook("extra-data", "10-greet"))
        self.assertFileContains("/etc/greeting", {want!r})
"""


@pytest.fixture
def hook_tree(elements_env):
    """good: a hook test that passes; bad: one that fails; empty: no tests."""
    for name, want in (("good", "hello"), ("bad", "goodbye")):
        elements_env.add(name, hooks={"extra-data": {"10-greet": HOOK}},
                         files={f"tests/test_{name}.py": HOOK_TEST.format(want=want)})
    elements_env.add("empty", files={"tests/README": "nothing yet\n"})
    elements_env.add("tiny")
    # No element-deps: the case is broken, an error found before any build.
    elements_env.add("tiny/test-elements/broken", files={"README.rst": "broken\n"})
    return elements_env


def parse(data: bytes) -> dict[str, dict]:
    """The tests in a subunit v2 stream, by id, as testtools sees them."""
    tests: list[dict] = []
    result = StreamToDict(tests.append)
    result.startTestRun()
    ByteStreamToStreamResult(io.BytesIO(data), non_subunit_name="stdout").run(result)
    result.stopTestRun()
    return {t["id"]: t for t in tests}


def text_of(test: dict, name: str) -> str:
    return test["details"][name].as_text()


def test_unit_cases_pass_fail_and_skip(hook_tree, tmp_path, capsys):
    stream = tmp_path / "results.subunit"
    status = dib_main(["test", "--unit", "-j", "1", "good", "bad", "empty",
                       "--subunit", str(stream)])
    assert status == 1
    tests = parse(stream.read_bytes())
    assert list(tests) == ["unit.good.unit", "unit.bad.unit", "unit.empty.unit"]
    assert {i: t["status"] for i, t in tests.items()} == {
        "unit.good.unit": "success", "unit.bad.unit": "fail", "unit.empty.unit": "skip"}
    bad = tests["unit.bad.unit"]
    # The whole pytest output travels with the failure: the assertion that failed.
    assert "does not contain 'goodbye'" in text_of(bad, "log")
    assert text_of(bad, "reason").startswith("fail: 1 failed")
    assert "no tests collected" in text_of(tests["unit.empty.unit"], "reason")
    assert "log" not in tests["unit.good.unit"]["details"]
    for test in tests.values():
        assert "unit" in test["tags"]
        start, end = sorted(test["timestamps"])
        assert start is not None and start <= end


def test_error_case_is_a_failure_tagged_error(hook_tree, tmp_path, capsys):
    stream = tmp_path / "results.subunit"
    status = dib_main(["test", "tiny/broken", "--cache-dir", str(tmp_path / "cache"),
                       "--subunit", str(stream)])
    assert status == 1
    test = parse(stream.read_bytes())["functional.tiny.broken"]
    assert test["status"] == "fail" and "error" in test["tags"]
    assert "element-deps is missing" in text_of(test, "reason")


def test_stream_to_stdout_holds_only_the_stream(hook_tree, capfdbinary):
    status = dib_main(["test", "--unit", "good", "bad", "--subunit", "-"])
    assert status == 1
    out, err = capfdbinary.readouterr()
    tests = parse(out)
    assert [(i, t["status"]) for i, t in tests.items()] == [
        ("unit.good.unit", "success"), ("unit.bad.unit", "fail")]
    # The text report moved to stderr; nothing but packets on stdout.
    assert b"good/unit" in err and b"good/unit" not in out
    assert stray_bytes(out) == b""


def stray_bytes(data: bytes) -> bytes:
    """What in ``data`` is not subunit packets."""
    from testtools import StreamResult

    class Stray(StreamResult):
        found = b""

        def status(self, test_id=None, file_name=None, file_bytes=None, **_kwargs):
            if test_id is None and file_name == "stdout":
                self.found += file_bytes
    stray = Stray()
    ByteStreamToStreamResult(io.BytesIO(data), non_subunit_name="stdout").run(stray)
    return stray.found


def test_subunit_and_json_cannot_share_stdout(hook_tree, capsys):
    assert dib_main(["test", "--unit", "good", "--subunit", "-", "--json", "-"]) == 2
    assert "cannot both write to stdout" in capsys.readouterr().err


def test_a_large_log_is_split_into_packets_and_read_back_whole(tmp_path):
    from dib.testing.functional import FAIL, CaseResult
    from dib.testing.subunit_report import write_subunit
    log = "".join(f"line {i} of a chatty build\n" for i in range(300000))   # ~8 MB
    buffer = io.BytesIO()
    write_subunit([CaseResult("big", "case", FAIL, 3.0, reason="the build failed",
                              started=1_700_000_000.0, output=log)], buffer)
    test = parse(buffer.getvalue())["functional.big.case"]
    assert text_of(test, "log") == log
    start, end = sorted(test["timestamps"])
    assert (end - start).total_seconds() == pytest.approx(3.0)
