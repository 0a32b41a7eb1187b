"""test-elements/<case>/expect.yaml: schema, loader and tree checks."""
from __future__ import annotations

from pathlib import Path

import pytest

from dib.testing.boot import BootReport
from dib.testing.expect import (SCHEMA, ExecCheck, ExpectationError, boot_expectation,
                                boot_plan, check_boot, check_expectations, installed_packages,
                                load_expectations, validate)
from dib.testing.guest import ExecResult

STATUS = """Package: figlet
Status: install ok installed
Architecture: amd64
Version: 2.2.5-3

Package: nano
Status: deinstall ok config-files
Architecture: amd64
Version: 7.2-1
Description: a small editor
 with a continuation line

Package: vim-tiny
Status: install ok installed
Version: 2:9.0
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "etc/motd").write_text("Welcome to dib\nhave fun\n")
    (root / "etc/motd").chmod(0o644)
    (root / "etc/secret").write_text("x")
    (root / "etc/secret").chmod(0o600)
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS)
    return root


def test_schema_is_valid_json_schema():
    import jsonschema
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_all_pass(tree):
    spec = {"files_present": ["/etc/motd", "etc/secret"],
            "files_absent": ["/tmp/dib-test-should-fail"],
            "file_contains": {"/etc/motd": "Welcome", "etc/motd": ["dib", "fun"]},
            "modes": {"/etc/motd": "0644", "/etc/secret": "600"},
            "packages_installed": ["figlet", "vim-tiny"],
            "packages_absent": ["nano", "emacs"],
            "boot": {"marker": "ok", "timeout": 60}}
    assert check_expectations(tree, spec) == []


def test_each_failure_is_reported(tree):
    spec = {"files_present": ["/etc/missing"],
            "files_absent": ["/etc/motd"],
            "file_contains": {"/etc/motd": "Goodbye", "/etc/nothere": "x"},
            "modes": {"/etc/secret": "0644", "/etc/gone": "0644"},
            "packages_installed": ["nano", "emacs"],
            "packages_absent": ["figlet"]}
    failures = check_expectations(tree, spec)
    text = "\n".join(failures)
    assert len(failures) == 9, text
    for fragment in ("/etc/missing: expected to exist", "/etc/motd: expected to be absent",
                     "does not contain 'Goodbye'", "/etc/nothere", "mode is 0600, expected 0644",
                     "/etc/gone", "package nano: expected installed",
                     "package emacs: expected installed",
                     "package figlet: expected absent, but version 2.2.5-3"):
        assert fragment in text


def test_installed_packages_reads_dpkg_status(tree):
    assert installed_packages(tree) == {"figlet": "2.2.5-3", "vim-tiny": "2:9.0"}
    assert installed_packages(tree / "nowhere") == {}


def test_missing_dpkg_status(tmp_path):
    failures = check_expectations(tmp_path, {"packages_installed": ["figlet"]})
    assert failures and "dpkg/status is missing" in failures[0]
    assert check_expectations(tmp_path, {"packages_absent": ["figlet"]}) == []


def test_missing_tree(tmp_path):
    assert check_expectations(tmp_path / "nope", {}) == [f"tree {tmp_path / 'nope'} does not exist"]


@pytest.mark.parametrize("bad", [
    {"file_present": ["/x"]},
    {"files_present": "/etc/motd"},
    {"modes": {"/etc/motd": "644x"}},
    {"modes": {"/etc/motd": 644}},
    {"boot": {"markr": "x"}},
    {"boot": {"marker": "x", "timeout": 0}},
    {"packages_installed": ["bad name"]},
    ["files_present"],
])
def test_invalid_specs(bad):
    with pytest.raises(ExpectationError):
        validate(bad)


def test_load_from_file_and_directory(tmp_path, tree):
    case = tmp_path / "case"
    case.mkdir()
    assert load_expectations(case) == {}
    (case / "expect.yaml").write_text("files_present:\n  - /etc/motd\n"
                                      "boot:\n  marker: hello\n")
    spec = load_expectations(case)
    assert spec["files_present"] == ["/etc/motd"]
    assert boot_expectation(spec) == ("hello", 300.0)
    assert check_expectations(tree, case / "expect.yaml") == []
    (case / "expect.yaml").write_text("files_present: [\n")
    with pytest.raises(ExpectationError, match="invalid YAML"):
        load_expectations(case)
    (case / "expect.yaml").write_text("files_presnt: []\n")
    with pytest.raises(ExpectationError, match="files_presnt"):
        load_expectations(case)


def test_empty_file_means_no_expectations(tmp_path):
    (tmp_path / "expect.yaml").write_text("")
    assert load_expectations(tmp_path / "expect.yaml") == {}
    assert boot_expectation({}) is None


# -- boot: how to boot, what to check in the guest ----------------------------------


BOOT_YAML = """\
boot:
  marker: "Reached target"
  timeout: 200
  firmware: uefi
  memory: 2G
  nics: 2
  grow: 4
  login: serial
  seed:
    user-data: seed/user-data
  exec:
    - test -d /var/lib/apt
    - run: systemctl is-active ssh
      output: active
    - run: systemctl is-enabled nothing
      status: 1
      contains: [disabled, nothing]
"""


def _case(tmp_path: Path, text: str) -> Path:
    case = tmp_path / "case"
    (case / "seed").mkdir(parents=True)
    (case / "seed/user-data").write_text("#cloud-config\n")
    (case / "expect.yaml").write_text(text)
    return case


def test_boot_plan_reads_every_key(tmp_path):
    case = _case(tmp_path, BOOT_YAML)
    plan = boot_plan(load_expectations(case), case)
    assert (plan.marker, plan.timeout, plan.firmware) == ("Reached target", 200.0, "uefi")
    assert (plan.memory_mb, plan.nics, plan.grow) == (2048, 2, 4 * 1024 ** 3)
    assert plan.seed == {"user-data": case / "seed/user-data"}
    assert plan.checks == [ExecCheck("test -d /var/lib/apt"),
                           ExecCheck("systemctl is-active ssh", "active"),
                           ExecCheck("systemctl is-enabled nothing", None,
                                     ("disabled", "nothing"), 1)]
    spec = plan.spec(tmp_path / "image.qcow2", log_path=tmp_path / "boot.log")
    assert list(spec.exec) == [c.run for c in plan.checks]
    assert (spec.expect, spec.grow, spec.nics, spec.login) == ("Reached target", 4 * 1024 ** 3,
                                                               2, "serial")


def test_boot_plan_defaults(tmp_path):
    plan = boot_plan({})
    assert (plan.marker, plan.timeout, plan.checks, plan.seed) == ("login:", 300.0, [], None)
    assert boot_plan({"boot": {"exec": ["true"]}}).marker == "login:"


@pytest.mark.parametrize("text, where", [
    ("boot:\n  exec: [{run: x, outptu: y}]\n", "boot/exec/0: .*'outptu' was unexpected"),
    ("boot:\n  exec: [{output: y}]\n", "boot/exec/0: 'run' is a required property"),
    ("boot:\n  exec: [{run: x, contains: []}]\n", "boot/exec/0"),
    ("boot:\n  exec: []\n", "boot/exec"),
    ("boot:\n  nics: 12\n", "boot/nics"),
    ("boot:\n  grow: lots\n", "boot/grow"),
    ("boot:\n  login: telnet\n", "boot/login"),
    ("boot:\n  seed: {meta-data: m}\n", "boot/seed"),
    ("boot:\n  seed: {user-data: seed/user-data, vendor-data: v}\n", "boot/seed"),
    ("boot:\n  seed: {user-data: seed/missing}\n", "boot/seed/user-data: .*seed/missing "
                                                    "does not exist"),
    ("boot:\n  memory: 2X\n", "boot/memory"),
])
def test_bad_boot_expectations_name_the_file_and_key(tmp_path, text, where):
    case = _case(tmp_path, text)
    with pytest.raises(ExpectationError, match=f"{case / 'expect.yaml'}: {where}") as info:
        load_expectations(case)
    assert "Traceback" not in str(info.value)


def _boot_report(results, **changes) -> BootReport:
    fields = dict(image=Path("i.qcow2"), firmware="bios", expect="login:", reached=True,
                  seconds=30.0, login="serial", exec_results=results)
    fields.update(changes)
    return BootReport(**fields)


def test_check_boot_compares_status_and_output():
    plan = boot_plan({"boot": {"exec": [
        "true", {"run": "systemctl is-active ssh", "output": "active"},
        {"run": "grep x /nope", "status": 2}, {"run": "uname -r", "contains": ["6.1", "amd64"]},
        {"run": "sleep 999"}]}})
    good = [ExecResult("true", 0, ""), ExecResult("systemctl is-active ssh", 0, "active\n"),
            ExecResult("grep x /nope", 2, "grep: /nope: No such file\n"),
            ExecResult("uname -r", 0, "6.1.0-56-amd64\n"), ExecResult("sleep 999", 0, "")]
    assert check_boot(_boot_report(good), plan) == []
    bad = [ExecResult("true", 1, "oops"), ExecResult("systemctl is-active ssh", 3, "inactive\n"),
           ExecResult("grep x /nope", 0, ""), ExecResult("uname -r", 0, "6.1.0-56-arm64\n"),
           ExecResult("sleep 999", None, "")]
    assert check_boot(_boot_report(bad), plan) == [
        "exec 'true': exit status 1, expected 0 (output: 'oops')",
        "exec 'systemctl is-active ssh': exit status 3, expected 0 (output: 'inactive')",
        # a whole-output match: 'inactive' contains 'active' but is not it
        "exec 'systemctl is-active ssh': output is 'inactive', expected 'active'",
        "exec 'grep x /nope': exit status 0, expected 2 (output: '')",
        "exec 'uname -r': output does not contain 'amd64' (output: '6.1.0-56-arm64')",
        "exec 'sleep 999': did not finish"]


def test_check_boot_reports_a_missing_marker_or_login_first():
    plan = boot_plan({"boot": {"marker": "ready", "timeout": 60, "exec": ["true"]}})
    assert check_boot(_boot_report([], reached=False, exit_reason="timeout"), plan) == [
        "'ready' not seen on the console within 60 s (timeout)"]
    assert check_boot(_boot_report([], exec_error="no login: prompt"), plan) == [
        "exec: no login: prompt"]
