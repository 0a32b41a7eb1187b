"""dib lint: each rule fires on a bad sample and stays quiet on a good one."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dib.cli import lint as lint_cli
from dib.testing.lint import RULES, collect_elements, lint

HOOK = """#!/bin/bash
if [ "${DIB_DEBUG_TRACE:-0}" -gt 0 ]; then
    set -x
fi
set -eu
set -o pipefail

echo "configuring"
if [ -d /etc ]; then
    touch /etc/good
fi
"""

GOOD = {
    "README.rst": ("====\ngood\n====\n\nA well-behaved element.\n", 0o644),
    "element-deps": ("alpha\nbeta\n", 0o644),
    "environment.d/10-good.bash": ("export GOOD_VAR=1\n", 0o644),
    "install.d/50-good": (HOOK, 0o755),
    "install.d/60-python": ("#!/usr/bin/env python3\nimport sys\nprint(sys.argv)\n", 0o755),
    "root.d/10-root": (HOOK + 'sudo touch "$TARGET_ROOT/etc/x"\n', 0o755),
    "package-installs.yaml": ("curl:\nvim:\n  phase: post-install.d\n", 0o644),
    # An old-style plain package list: data that package-installs reads, not a hook.
    "install.d/package-installs-good": ("curl\n# build only\n-gcc\n", 0o644),
    "pkg-map": ('{"family": {"debian": {"vim": "vim-tiny"}}}\n', 0o644),
    "source-repository-good": ("good git /opt/good https://example.invalid/good\n", 0o644),
    "block-device-default.yaml": ("- local_loop:\n    name: image0\n", 0o644),
}

# rule → files to add or replace (None deletes) in the good element.
BAD = {
    "readme": {"README.rst": None},
    "executable": {"install.d/70-noexec": (HOOK, 0o644)},
    "shebang": {"install.d/50-good": (HOOK.replace("#!/bin/bash", "#!/usr/bin/env bash"),
                                      0o755)},
    "sete": {"install.d/50-good": (HOOK.replace("set -eu\n", "set -u\n"), 0o755)},
    "setu": {"install.d/50-good": (HOOK.replace("set -eu\n", "set -e\n"), 0o755)},
    "setpipefail": {"install.d/50-good": (HOOK.replace("set -o pipefail\n", ""), 0o755)},
    "dibdebugtrace": {"install.d/50-good": (
        "#!/bin/bash\nset -eu\nset -o pipefail\necho hi\n", 0o755)},
    "indent": {"install.d/50-good": (HOOK + "if true; then\n  echo two\nfi\n", 0o755)},
    "envexec": {"environment.d/10-good.bash": ("export GOOD_VAR=1\n", 0o755)},
    "envsetx": {"environment.d/10-good.bash": ("set -x\nexport GOOD_VAR=1\n", 0o644)},
    "exportsubst": {"install.d/50-good": (HOOK + "export NOW=$(date)\necho \"$NOW\"\n",
                                          0o755)},
    "safe_sudo": {"root.d/10-root": (HOOK + "sudo rm -f /etc/host-file\n", 0o755)},
    "which": {"install.d/50-good": (HOOK + "which curl\n", 0o755)},
    "tabindent": {"install.d/50-good": (HOOK + "if true; then\n\techo tab\nfi\n", 0o755)},
    "newline": {"install.d/50-good": (HOOK + "echo end", 0o755)},
    "sorted-deps": {"element-deps": ("beta\nalpha\n", 0o644)},
    "mddocs": {"NOTES.md": ("# notes\n", 0o644)},
    "yaml": {"block-device-default.yaml": ("- local_loop: [\n", 0o644)},
    "pkgmap": {"pkg-map": ('{"family": {\n', 0o644)},
    "hookname": {"install.d/50-good.sh": (HOOK, 0o755)},
    "missing-dep": {"element-deps": ("alpha\nno-such-element\n", 0o644)},
    "package-installs": {"package-installs.yaml": ("curl:\n  phase: sometime.d\n", 0o644)},
    "shellcheck": {"install.d/50-good": (HOOK + "UNUSED_THING=1\n", 0o755)},
    "python": {"install.d/60-python": ("#!/usr/bin/env python3\ndef broken(:\n", 0o755)},
    "undocumented-variable": {"install.d/50-good": (
        HOOK + 'echo "${DIB_GOOD_COLOUR:-blue}"\n', 0o755)},
}


def write_element(root: Path, name: str, files: dict) -> Path:
    element = root / name
    for rel, spec in files.items():
        if spec is None:
            continue
        content, mode = spec
        path = element / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(mode)
    return element


@pytest.fixture
def elements(tmp_path: Path) -> Path:
    """A directory of elements: alpha and beta (dependencies) and good."""
    root = tmp_path / "elements"
    for dep in ("alpha", "beta"):
        write_element(root, dep, {"README.rst": (f"{dep}\n", 0o644)})
    write_element(root, "good", GOOD)
    return root


def run_lint(paths, **kwargs):
    kwargs.setdefault("search_paths", [])
    kwargs.setdefault("shellcheck", shutil.which("shellcheck") is not None)
    return lint([str(p) for p in paths], environ={}, **kwargs)


def rules_of(report) -> set[str]:
    return {f.rule for f in report.findings}


def test_every_rule_has_a_bad_sample():
    assert set(BAD) == set(RULES)


def test_good_element_is_clean(elements):
    report = run_lint([elements])
    assert report.findings == [], "\n".join(f.text() for f in report.findings)
    assert [p.name for p in report.elements] == ["alpha", "beta", "good"]


@pytest.mark.parametrize("rule", sorted(BAD))
def test_rule_fires_on_bad_sample(elements, rule):
    if rule == "shellcheck" and shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    files = dict(GOOD)
    files.update(BAD[rule])
    shutil.rmtree(elements / "good")
    write_element(elements, "good", files)
    report = run_lint([elements / "good"], search_paths=[elements])
    assert rule in rules_of(report), "\n".join(f.text() for f in report.findings)
    for finding in report.findings:
        assert finding.file.startswith(str(elements / "good"))
        assert finding.line >= 0 and finding.message


def test_findings_carry_line_numbers(elements):
    write_element(elements, "good", {"install.d/50-good": (HOOK + "which curl\n", 0o755)})
    report = run_lint([elements / "good"], search_paths=[elements], shellcheck=False)
    (finding,) = [f for f in report.findings if f.rule == "which"]
    assert finding.line == HOOK.count("\n") + 1
    assert finding.text().startswith(f"{elements}/good/install.d/50-good:{finding.line}: "
                                     "which: ")


def test_disable_comment_silences_named_rules(elements):
    body = ("#!/bin/bash\n# dib-lint: disable=sete setu dibdebugtrace\n"
            "set -o pipefail\necho hi\n")
    write_element(elements, "good", {"install.d/50-good": (body, 0o755)})
    report = run_lint([elements / "good"], search_paths=[elements], shellcheck=False)
    assert not rules_of(report) & {"sete", "setu", "dibdebugtrace"}
    body = body.replace("set -o pipefail\n", "")
    write_element(elements, "good", {"install.d/50-good": (body, 0o755)})
    report = run_lint([elements / "good"], search_paths=[elements], shellcheck=False)
    assert rules_of(report) == {"setpipefail"}


def test_safe_sudo_and_which_line_markers(elements):
    body = HOOK + ("sudo rm -f /etc/host-file  # dib-lint: safe_sudo\n"
                   "which curl  # dib-lint: which\n")
    write_element(elements, "good", {"root.d/10-root": (body, 0o755)})
    report = run_lint([elements / "good"], search_paths=[elements], shellcheck=False)
    assert report.findings == []


def test_safe_sudo_only_in_host_phases(elements):
    body = HOOK + "sudo rm -f /etc/inside\n"
    write_element(elements, "good", {"install.d/50-good": (body, 0o755)})
    report = run_lint([elements / "good"], search_paths=[elements], shellcheck=False)
    assert "safe_sudo" not in rules_of(report)
    for phase in ("extra-data", "block-device", "finalise", "cleanup", "post-root"):
        write_element(elements, "good", {f"{phase}.d/10-x": (body, 0o755)})
    report = run_lint([elements / "good"], search_paths=[elements], shellcheck=False)
    flagged = {Path(f.file).parent.name for f in report.findings if f.rule == "safe_sudo"}
    assert flagged == {"extra-data.d", "block-device.d", "finalise.d", "cleanup.d",
                       "post-root.d"}


def test_provided_names_count_as_existing(elements):
    write_element(elements, "alpha", {"element-provides": ("virtual-thing\n", 0o644)})
    write_element(elements, "good", {"element-deps": ("alpha\nvirtual-thing\n", 0o644)})
    report = run_lint([elements], shellcheck=False)
    assert "missing-dep" not in rules_of(report)


def test_collect_elements_accepts_element_or_parent(elements):
    assert [p.name for p in collect_elements([elements / "good"])] == ["good"]
    assert len(collect_elements([elements, elements / "good"])) == 3


# ---------------------------------------------------------------- the command line

def test_cli_exit_codes_and_text(elements, capsys):
    assert lint_cli.standalone([str(elements), "--no-shellcheck"]) == 0
    write_element(elements, "good", {"install.d/50-good": (HOOK + "which curl\n", 0o755)})
    assert lint_cli.standalone([str(elements), "--no-shellcheck"]) == 1
    out = capsys.readouterr().out
    assert f"{elements}/good/install.d/50-good:" in out and ": which: " in out


def test_cli_json(elements, capsys):
    write_element(elements, "good", {"README.rst": None, "NOTES.md": ("x\n", 0o644)})
    (elements / "good" / "README.rst").unlink()
    assert lint_cli.standalone([str(elements / "good"), "--json", "--no-shellcheck"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list)
    assert {d["rule"] for d in data} == {"readme", "mddocs"}
    assert set(data[0]) >= {"rule", "file", "line", "message"}


def test_cli_missing_path_is_usage_error(tmp_path, capsys):
    code = lint_cli.standalone([str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not exist" in err and "Traceback" not in err


def test_cli_unknown_rule_and_flag(elements, capsys):
    assert lint_cli.standalone([str(elements), "--ignore", "nonsense"]) == 2
    assert lint_cli.standalone([str(elements), "--frobnicate"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_ignore_flag(elements):
    write_element(elements, "good", {"install.d/50-good": (HOOK + "which curl\n", 0o755)})
    assert lint_cli.standalone([str(elements), "--no-shellcheck", "--ignore", "which"]) == 0


def test_dib_lint_subcommand(elements, capsys):
    from dib.cli.main import main
    assert main(["lint", str(elements), "--no-shellcheck"]) == 0


def test_default_path_is_elements_dir(elements, monkeypatch):
    monkeypatch.chdir(elements.parent)
    assert lint_cli.standalone(["--no-shellcheck"]) == 0


def test_default_path_without_anything_is_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ELEMENTS_PATH", "")
    assert lint_cli.standalone([]) == 2
    assert "nothing to lint" in capsys.readouterr().err


def test_shipped_elements_have_no_hook_problems():
    shipped = Path(__file__).resolve().parents[2] / "elements"
    if not shipped.is_dir():
        pytest.skip("no shipped elements in this tree")
    report = lint([str(shipped)], shellcheck=False, environ={})
    serious = [f for f in report.findings
               if f.rule in ("hookname", "python", "yaml", "pkgmap", "package-installs")]
    assert serious == [], "\n".join(f.text() for f in serious)


def variable_findings(report) -> list:
    return [f for f in report.findings if f.rule == "undocumented-variable"]


def test_undocumented_variable_names_element_file_and_variable(elements):
    write_element(elements, "good", {
        "install.d/50-good": (HOOK + 'echo "${DIB_GOOD_COLOUR:-blue}"\n', 0o755),
        "install.d/55-more": (HOOK + 'echo "$DIB_GOOD_COLOUR"\n', 0o755)})
    (finding,) = variable_findings(run_lint([elements / "good"], shellcheck=False))
    assert finding.file.endswith("install.d/50-good")
    assert finding.line == HOOK.count("\n") + 1
    assert finding.element == "good"
    assert "DIB_GOOD_COLOUR" in finding.message and "'good'" in finding.message
    assert "document it" in finding.message and "1 other file" in finding.message


def test_variable_named_in_readme_is_documented(elements):
    readme = "====\ngood\n====\n\nDIB_GOOD_COLOUR\n  The colour (default blue).\n"
    write_element(elements, "good", {
        "README.rst": (readme, 0o644),
        "install.d/50-good": (HOOK + 'echo "${DIB_GOOD_COLOUR:-blue}"\n', 0o755)})
    assert variable_findings(run_lint([elements / "good"], shellcheck=False)) == []


def test_variables_from_environment_d_and_package_installs_count(elements):
    write_element(elements, "good", {
        "environment.d/10-good.bash": ("export DIB_GOOD_A=${DIB_GOOD_A:-1}\n", 0o644),
        "package-installs.yaml": ("curl:\n  when: DIB_GOOD_B = 1\n", 0o644)})
    report = run_lint([elements / "good"], shellcheck=False)
    assert sorted(f.message.split()[3] for f in variable_findings(report)) == [
        "DIB_GOOD_A", "DIB_GOOD_B"]


def test_engine_variables_are_allowed(elements):
    # DIB_DEBUG_TRACE is in every hook; DIB_IMAGE_SIZE is a setting
    # (docs/settings.md), DIB_PYTHON_EXEC is exported by the build.
    write_element(elements, "good", {"install.d/50-good": (
        HOOK + 'echo "${DIB_IMAGE_SIZE:-} $DIB_PYTHON_EXEC"\n', 0o755)})
    assert variable_findings(run_lint([elements / "good"], shellcheck=False)) == []


def test_variable_set_and_documented_by_another_element_is_allowed(elements):
    write_element(elements, "alpha", {
        "README.rst": ("alpha\n\nSets DIB_ALPHA_MODE for other elements.\n", 0o644),
        "environment.d/10-alpha.bash": ("export DIB_ALPHA_MODE=fast\n", 0o644)})
    write_element(elements, "good", {"install.d/50-good": (
        HOOK + 'echo "$DIB_ALPHA_MODE"\n', 0o755)})
    assert variable_findings(run_lint([elements], shellcheck=False)) == []
    # Set but not documented there: the reader must document it itself.
    write_element(elements, "alpha", {"README.rst": ("alpha\n", 0o644)})
    report = run_lint([elements], shellcheck=False)
    assert [f.element for f in variable_findings(report)] == ["good"]


def test_variable_the_element_sets_for_others_is_not_a_read(elements):
    write_element(elements, "good", {"environment.d/10-good.bash": (
        "export DIB_GOOD_OUTPUT=1\nif [ \"$DIB_GOOD_OUTPUT\" = 1 ]; then\n"
        "    export GOOD_VAR=1\nfi\n", 0o644)})
    assert variable_findings(run_lint([elements / "good"], shellcheck=False)) == []


def test_missing_readme_is_one_problem_not_one_per_variable(elements):
    write_element(elements, "good", {"install.d/50-good": (
        HOOK + 'echo "${DIB_GOOD_COLOUR:-blue}"\n', 0o755)})
    (elements / "good" / "README.rst").unlink()
    report = run_lint([elements / "good"], shellcheck=False)
    assert "readme" in rules_of(report)
    assert variable_findings(report) == []


def test_shipped_elements_document_their_variables():
    shipped = Path(__file__).resolve().parents[2] / "elements"
    if not shipped.is_dir():
        pytest.skip("no shipped elements in this tree")
    report = lint([str(shipped)], shellcheck=False, environ={})
    found = variable_findings(report)
    assert found == [], "\n".join(f.text() for f in found)
