"""test-elements/<case>/expect.yaml: schema, loader and tree checks."""
from __future__ import annotations

from pathlib import Path

import pytest

from dib.testing.expect import (SCHEMA, ExpectationError, boot_expectation,
                                check_expectations, installed_packages, load_expectations,
                                validate)

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
    {"boot": {"timeout": 5}},
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
