"""Element hook tests under unittest discovery (stestr, subunit.run), through
``dib.testing.loader``: the tests/ directories of elements are not packages,
the loader hands their files to discovery. No root, no network."""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from subunit import ByteStreamToStreamResult
from testtools import StreamToDict

from elementtree import repo_root, subprocess_env

HOOK = """#!/bin/bash
set -eu -o pipefail
echo hello > "$TARGET_ROOT/etc/greeting"
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

PACKAGE = """
from pathlib import Path

from dib.testing.loader import element_tests_loader

load_tests = element_tests_loader(Path(__file__).resolve().parents[1] / "elements")
"""


@pytest.fixture
def project(tree, tmp_path):
    """A project: elements good (its test passes), bad (fails), broken (its
    test file does not import), pytest-only (no unittest tests), untested,
    and a discovery package pointing at them."""
    for name, want in (("good", "hello"), ("bad", "goodbye")):
        tree.add(name, hooks={"extra-data": {"10-greet": HOOK}},
                 files={f"tests/test_{name}.py": HOOK_TEST.format(want=want)})
    tree.add("broken", files={"tests/test_broken.py": "import no_such_module_here\n"})
    tree.add("pytest-only", files={"tests/test_plain.py": "def test_a():\n    pass\n"})
    tree.add("untested")
    (tmp_path / "hooktests").mkdir()
    (tmp_path / "hooktests/__init__.py").write_text(PACKAGE)
    (tmp_path / ".stestr.conf").write_text("[DEFAULT]\ntest_path=./hooktests\ntop_dir=./\n")
    return tmp_path


def parse(data: bytes) -> dict[str, str]:
    tests: list[dict] = []
    result = StreamToDict(tests.append)
    result.startTestRun()
    ByteStreamToStreamResult(io.BytesIO(data), non_subunit_name="stdout").run(result)
    result.stopTestRun()
    return {t["id"]: t["status"] for t in tests}


def test_subunit_run_discovers_and_runs_element_tests(project):
    proc = subprocess.run([sys.executable, "-m", "subunit.run", "discover", "-t", ".",
                           "hooktests"], cwd=project, capture_output=True,
                          env=subprocess_env())
    assert parse(proc.stdout) == {
        "element_tests.good.test_good.TestGreeting.test_greeting": "success",
        "element_tests.bad.test_bad.TestGreeting.test_greeting": "fail",
        "element_tests.broken.test_broken": "fail",
        "element_tests.pytest-only.test_plain": "fail",
    }, proc.stderr.decode()


def test_stestr_runs_element_tests(project):
    stestr = shutil.which("stestr")
    if stestr is None:
        pytest.skip("stestr is not installed (pip install stestr)")
    run = subprocess.run([stestr, "run", "--concurrency", "2"], cwd=project,
                         capture_output=True, text=True, env=subprocess_env())
    assert run.returncode == 1, run.stdout + run.stderr
    last = subprocess.run([stestr, "last", "--subunit"], cwd=project, capture_output=True,
                          env=subprocess_env())
    statuses = parse(last.stdout)
    assert statuses["element_tests.good.test_good.TestGreeting.test_greeting"] == "success"
    assert statuses["element_tests.bad.test_bad.TestGreeting.test_greeting"] == "fail"
    assert statuses["element_tests.broken.test_broken"] == "fail"


def test_the_repositorys_stestr_config_finds_every_element_test_file():
    root = repo_root()
    config = (root / ".stestr.conf").read_text()
    assert "test_path=./tests/element_hooks" in config and "top_dir=./tests" in config
    listed = subprocess.run([sys.executable, "-m", "subunit.run", "discover", "-t", "tests",
                             "tests/element_hooks", "--list"], cwd=root, capture_output=True,
                            env=subprocess_env())
    ids = set(parse(listed.stdout))
    modules = {".".join(i.split(".")[:3]) for i in ids}
    files = {f"element_tests.{p.parents[1].name}.{p.stem}"
             for p in Path(root, "elements").glob("*/tests/test_*.py")}
    assert files and modules == files
    assert not any(i.count(".") == 2 for i in ids), "a test file failed to import"
