"""``dib test`` end to end: real builds of test-elements through the pipeline.

Needs root and mmdebstrap (the cases are built on debian-minimal from the
host's mirror). The phase cache is the default one (or DIB_CACHE_DIR), so the
first run bootstraps and later runs reuse every unchanged phase.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[2]
HOOK = "#!/bin/bash\nset -eu\nset -o pipefail\n"


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "dib test builds images: needs root"
    if shutil.which("mmdebstrap") is None:
        return "needs mmdebstrap to bootstrap debian-minimal"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    return None


pytestmark = [pytest.mark.functional,
              pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")]


def _write(path: Path, text: str, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755 if executable else 0o644)


def _mounts() -> list[str]:
    # the mount point and source of each entry (ids change between reads)
    return sorted(" ".join(line.split()[3:5]) for line in
                  Path("/proc/self/mountinfo").read_text().splitlines())


def _dib_test(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dib", "test", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)


def _subunit_tests(data: bytes) -> list[dict]:
    import io

    from subunit import ByteStreamToStreamResult
    from testtools import StreamToDict
    tests: list[dict] = []
    result = StreamToDict(tests.append)
    result.startTestRun()
    ByteStreamToStreamResult(io.BytesIO(data), non_subunit_name="stdout").run(result)
    result.stopTestRun()
    return tests


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture
def tiny(tmp_path) -> Path:
    """dt-tiny writes /etc/dt-tiny; three cases: passes, must-fail, breaks."""
    root = tmp_path / "elements"
    element = root / "dt-tiny"
    _write(element / "README.rst", "dt-tiny\n=======\nA test fixture.\n")
    _write(element / "post-install.d/10-dt-tiny",
           HOOK + "echo 'tiny was here' > /etc/dt-tiny\n", executable=True)
    cases = element / "test-elements"
    _write(cases / "passes/element-deps", "dt-tiny\n")
    _write(cases / "passes/expect.yaml",
           "files_present: [/etc/dt-tiny]\n"
           "files_absent: [/tmp/dib-test-should-fail]\n"
           "file_contains: {/etc/dt-tiny: tiny was here}\n"
           "packages_installed: [dpkg]\n")
    _write(cases / "must-fail/element-deps", "dt-tiny\n")
    _write(cases / "must-fail/post-install.d/20-must-fail",
           HOOK + "touch /tmp/dib-test-should-fail\necho 'failing on purpose'\nexit 1\n",
           executable=True)
    _write(cases / "breaks/element-deps", "dt-tiny\n")
    _write(cases / "breaks/post-install.d/20-breaks",
           HOOK + "echo 'tiny broke here'\nexit 7\n", executable=True)
    return root


def _workspaces(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "tests/dt-tiny").glob("*/work/dib-build-*"))


def test_tiny_element_cases(tiny, env, tmp_path):
    env["ELEMENTS_PATH"] = str(tiny)
    cache_dir = Path(env.get("DIB_CACHE_DIR") or Path.home() / ".cache/dib")
    before = _mounts()
    junit, report = tmp_path / "junit.xml", tmp_path / "results.json"
    stream = tmp_path / "results.subunit"
    proc = _dib_test(["dt-tiny", "--junit", str(junit), "--json", str(report),
                      "--subunit", str(stream), "-j", "2", "--hook-timeout", "300"],
                     env, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    results = {r["case"]: r for r in json.loads(report.read_text())["results"]}
    assert results["passes"]["status"] == "pass", results["passes"]
    assert results["must-fail"]["status"] == "pass", results["must-fail"]
    assert results["must-fail"]["expected_failure"] is True
    broken = results["breaks"]
    assert broken["status"] == "fail"
    assert broken["hook"] == "post-install/20-breaks"
    assert "exit status 7" in broken["reason"]
    assert "tiny broke here" in broken["details"]
    assert "tiny broke here" in proc.stdout          # the failure's output is shown
    suite = ET.parse(junit).getroot().find("testsuite[@name='dt-tiny']")
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    assert suite.find("testcase[@name='breaks']/failure").get("type") == \
        "post-install/20-breaks"
    # the same in subunit, in the listed order, the failure with its build log
    tests = _subunit_tests(stream.read_bytes())
    assert [(t["id"], t["status"]) for t in tests] == [
        ("functional.dt-tiny.breaks", "fail"), ("functional.dt-tiny.must-fail", "success"),
        ("functional.dt-tiny.passes", "success")]
    log = tests[0]["details"]["log"].as_text()
    assert "tiny broke here" in log and "post-install" in log
    # nothing left behind: no mount, no workspace, no image
    assert _mounts() == before
    assert _workspaces(cache_dir) == []
    for case in ("passes", "must-fail", "breaks"):
        assert list((cache_dir / "tests/dt-tiny" / case).iterdir()) == []


def test_shipped_element_passes(env, tmp_path):
    proc = _dib_test(["install-bin", "--json", "-"], env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "install-bin/bin-installed" in proc.stdout
    assert "1 passed" in proc.stdout


def test_hanging_hook_is_stopped_and_reported(tiny, env, tmp_path):
    case = tiny / "dt-tiny/test-elements/hangs"
    _write(case / "element-deps", "dt-tiny\n")
    _write(case / "post-install.d/20-hangs", HOOK + "echo 'going to sleep'\nsleep 600\n",
           executable=True)
    env["ELEMENTS_PATH"] = str(tiny)
    before = _mounts()
    report = tmp_path / "results.json"
    proc = _dib_test(["dt-tiny/hangs", "--hook-timeout", "5", "--json", str(report)], env,
                     tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = json.loads(report.read_text())["results"][0]
    assert result["status"] == "fail"
    assert result["reason"] == \
        "hook post-install/20-hangs of element 'hangs' timed out after 5 s", result
    assert result["seconds"] < 300
    assert _mounts() == before
    leftover = [p for p in Path("/proc").glob("[0-9]*/cmdline")
                if _read(p).replace("\0", " ").strip() == "sleep 600"]
    assert leftover == []


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
