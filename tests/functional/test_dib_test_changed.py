"""``dib test --changed`` end to end, in a real git checkout of a small element tree.

One file of one element changes; the command must pick that element and the
elements that depend on it (by name and through element-provides) and
nothing else. Nothing is built: ``--list`` shows the selected cases and
``--unit`` runs the selected elements' own tests, so this needs git only.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.functional,
              pytest.mark.skipif(shutil.which("git") is None, reason="needs git")]

# name → (element-deps, element-provides); each element has one test-element
# and a tests/ directory. ct-leaf's dependants: ct-mid by name, ct-top through
# ct-mid, ct-virtual through the name ct-leaf provides; ct-below is a
# dependency of ct-leaf, not a dependant. ct-apart does not depend on any of
# them, but its test-element builds ct-top too (CASE_DEPS), and ct-alone is
# unrelated.
TREE = {
    "ct-leaf": (["ct-below"], ["ct-thing"]),
    "ct-mid": (["ct-leaf"], []),
    "ct-top": (["ct-mid"], []),
    "ct-virtual": (["ct-thing"], []),
    "ct-apart": ([], []),
    "ct-alone": ([], []),
    "ct-below": ([], []),
}
CASE_DEPS = {"ct-apart": ["ct-top"]}


def _write(path: Path, text: str, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755 if executable else 0o644)


def _make_tree(root: Path) -> None:
    for name, (deps, provides) in TREE.items():
        element = root / name
        _write(element / "README.rst", f"{name}\n{'=' * len(name)}\nA test fixture.\n")
        _write(element / f"install.d/10-{name}",
               f"#!/bin/bash\nset -eu\nset -o pipefail\ntouch /etc/{name}\n", executable=True)
        if deps:
            _write(element / "element-deps", "\n".join(deps) + "\n")
        if provides:
            _write(element / "element-provides", "\n".join(provides) + "\n")
        case_deps = [name, *CASE_DEPS.get(name, [])]
        _write(element / "test-elements/basic/element-deps", "\n".join(case_deps) + "\n")
        _write(element / "tests/test_ok.py", "def test_ok():\n    pass\n")


@pytest.fixture
def checkout(tmp_path) -> tuple[Path, dict[str, str]]:
    """A git repository on main with the tree committed, then a topic branch."""
    repo = tmp_path / "project"
    _make_tree(repo / "elements")
    env = dict(os.environ)
    env.update(HOME=str(tmp_path), GIT_CONFIG_NOSYSTEM="1",
               GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.invalid",
               ELEMENTS_PATH=str(repo / "elements"),
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])]))
    env.pop("DIB_RELEASE", None)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "start"],
                 ["switch", "-q", "-c", "topic"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return repo, env


def _dib(args: list[str], repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dib", "test", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)


def test_changed_selects_the_element_and_its_dependants_only(checkout, tmp_path):
    repo, env = checkout
    hook = repo / "elements/ct-leaf/install.d/10-ct-leaf"
    hook.write_text(hook.read_text() + "echo changed\n")

    listed = _dib(["--changed", "--list"], repo, env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["ct-leaf/basic", "ct-mid/basic", "ct-virtual/basic",
                                     "ct-top/basic", "ct-apart/basic"]
    assert "changed: elements/ct-leaf/install.d/10-ct-leaf" in listed.stderr
    assert "depends on ct-leaf (through 'ct-thing')" in listed.stderr
    assert "depends on ct-mid" in listed.stderr
    assert "ct-apart/basic  its test-element depends on ct-top" in listed.stderr

    releases = _dib(["--changed", "--release", "bookworm,trixie", "--list"], repo, env)
    assert releases.stdout.split()[:2] == ["ct-leaf/basic[bookworm]", "ct-leaf/basic[trixie]"]
    assert len(releases.stdout.split()) == 10

    junit = tmp_path / "unit.xml"
    ran = _dib(["--changed", "--unit", "--junit", str(junit)], repo, env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    suites = [s.get("name") for s in ET.parse(junit).getroot().findall("testsuite")]
    assert sorted(suites) == ["ct-leaf", "ct-mid", "ct-top", "ct-virtual"]


def test_nothing_changed_is_said_and_passes(checkout):
    repo, env = checkout
    (repo / "NOTES.md").write_text("not an element\n")
    result = _dib(["--changed"], repo, env)
    assert result.returncode == 0, result.stderr
    assert "1 changed file(s) outside the elements, ignored: NOTES.md" in result.stderr
    assert "no element changed: nothing to test" in result.stderr
