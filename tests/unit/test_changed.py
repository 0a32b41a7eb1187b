"""``--changed``: which files changed (real git repositories in temporary
directories), which elements hold them, and what depends on those."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dib.cli.main import main as dib_main
from dib.elements import find_elements
from dib.elements.resolve import dependants
from dib.testing import changes
from elementtree import ElementTree


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch, tmp_path):
    # Commits need a name; the user's own git configuration must not matter.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.invalid")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_all(repo: Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path) -> Path:
    """A repository on branch main holding elements/ with this graph:
    app → lib → base-os (by name); needs-os → operating-system (provided
    by base-os); other stands alone; main has one commit."""
    root = (tmp_path / "repo").resolve()
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    tree = ElementTree(root / "elements")
    tree.add("base-os", provides=["operating-system"], hooks={"install": ["10-os"]})
    tree.add("lib", deps=["base-os"], hooks={"install": ["10-lib"]})
    tree.add("app", deps=["lib"], files={"README.rst": "app\n"})
    tree.add("app/test-elements/basic", deps=["app"])
    tree.add("needs-os", deps=["operating-system"], files={"README.rst": "needs\n"})
    tree.add("other", files={"README.rst": "other\n"})
    (root / "README.md").write_text("project\n")
    (root / ".gitignore").write_text("*.log\n")
    commit_all(root, "start")
    return root


def _select(repo: Path, base: str = "main") -> changes.Selection:
    index = find_elements([repo / "elements"])
    return changes.changed_elements(index, base, cwd=repo)


# -- the reverse closure ---------------------------------------------------------------


def test_dependants_by_name_transitively_and_through_provides(repo):
    index = find_elements([repo / "elements"])
    found = dependants(["base-os"], index)
    assert list(found) == ["lib", "needs-os", "app"]
    assert found["lib"].describe() == "depends on base-os"
    assert found["needs-os"].describe() == "depends on base-os (through 'operating-system')"
    assert found["app"].describe() == "depends on lib"


def test_dependants_of_a_leaf_and_of_a_name_no_element_has(repo):
    index = find_elements([repo / "elements"])
    assert dependants(["app"], index) == {}
    assert dependants(["other"], index) == {}
    # a deleted element: what still names it depends on it
    (repo / "elements/other/element-deps").write_text("gone\n")
    assert list(dependants(["gone"], find_elements([repo / "elements"]))) == ["other"]


def test_dependants_survive_cycles_and_leave_out_the_changed(tree):
    tree.add("a", deps=["b"])
    tree.add("b", deps=["a"])
    tree.add("c", deps=["b"])
    assert set(dependants(["a"], find_elements([tree.root]))) == {"b", "c"}


# -- which files changed ----------------------------------------------------------------


def test_committed_staged_unstaged_and_untracked_changes_all_count(repo):
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "-c", "topic")
    (repo / "elements/lib/install.d/10-lib").write_text("#!/bin/bash\necho committed\n")
    commit_all(repo)
    (repo / "elements/other/README.rst").write_text("staged\n")
    git(repo, "add", "elements/other/README.rst")
    (repo / "elements/app/README.rst").write_text("unstaged\n")
    (repo / "elements/needs-os/new-file").write_text("untracked\n")
    (repo / "elements/needs-os/debug.log").write_text("ignored by .gitignore\n")
    paths = changes.changed_paths(repo, base)
    assert sorted(paths) == ["elements/app/README.rst", "elements/lib/install.d/10-lib",
                             "elements/needs-os/new-file", "elements/other/README.rst"]


def test_a_rename_counts_on_both_sides(repo):
    git(repo, "mv", "elements/other/README.rst", "elements/app/moved.rst")
    commit_all(repo)
    paths = changes.changed_paths(repo, "HEAD~1")
    assert sorted(paths) == ["elements/app/moved.rst", "elements/other/README.rst"]
    selection = changes.select(paths, repo, find_elements([repo / "elements"]))
    assert set(selection.changed) == {"other", "app"}


def test_unchanged_tree_selects_nothing(repo):
    selection = _select(repo)
    assert selection.names == [] and selection.outside == [] and selection.deleted == {}


# -- files to elements ------------------------------------------------------------------


def test_changed_element_and_its_dependants_are_selected_with_reasons(repo):
    (repo / "elements/lib/install.d/10-lib").write_text("#!/bin/bash\necho changed\n")
    selection = _select(repo)
    assert selection.names == ["lib", "app"]
    assert selection.reason("lib") == "changed: elements/lib/install.d/10-lib"
    assert selection.reason("app") == "depends on lib"


def test_a_test_element_file_belongs_to_its_element(repo):
    (repo / "elements/app/test-elements/basic/expect.yaml").write_text("files_present: [/x]\n")
    assert _select(repo).names == ["app"]


def test_provider_change_selects_what_needs_the_virtual_name(repo):
    (repo / "elements/base-os/README.rst").write_text("new\n")
    selection = _select(repo)
    assert selection.names == ["base-os", "lib", "needs-os", "app"]
    assert "through 'operating-system'" in selection.reason("needs-os")


def test_deleted_element_is_not_selected_but_its_dependants_are(repo):
    git(repo, "rm", "-rq", "elements/lib")
    commit_all(repo)
    selection = _select(repo, "HEAD~1")
    assert list(selection.deleted) == ["lib"]
    assert selection.names == ["app"]
    assert selection.reason("app") == "depends on lib"
    text = "\n".join(selection.describe("dib test --changed"))
    assert "lib" in text and "deleted, not checked" in text


def test_renamed_element_old_name_deleted_new_name_changed(repo):
    git(repo, "mv", "elements/lib", "elements/lib2")
    selection = _select(repo)
    assert list(selection.deleted) == ["lib"]
    assert selection.names == ["lib2", "app"]


def test_changes_outside_elements_are_ignored_and_counted(repo):
    (repo / "README.md").write_text("changed\n")
    (repo / "elements/NOTES").write_text("not an element\n")
    selection = _select(repo)
    assert selection.names == []
    assert sorted(selection.outside) == ["README.md", "elements/NOTES"]
    assert "2 changed file(s) outside the elements, ignored" in \
        selection.describe("x")[-1]


def test_elements_not_on_the_search_path_are_not_selected(repo):
    (repo / "elements/other/README.rst").write_text("changed\n")
    (repo / "elements/lib/README.rst").write_text("changed\n")
    index = find_elements([repo / "elements"])
    del index.elements["other"]       # as if another directory's 'other' were used
    selection = changes.select(changes.changed_paths(repo, "HEAD"), repo, index)
    assert selection.names == ["lib", "app"]


# -- the base commit --------------------------------------------------------------------


def test_default_base_is_the_merge_base_with_main(repo):
    fork = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "-c", "topic")
    (repo / "elements/other/README.rst").write_text("on topic\n")
    commit_all(repo)
    git(repo, "switch", "-q", "main")
    (repo / "README.md").write_text("main moved on\n")
    commit_all(repo)
    git(repo, "switch", "-q", "topic")
    index = find_elements([repo / "elements"])
    selection = changes.changed_elements(index, None, cwd=repo / "elements")
    assert selection.base.commit == fork
    assert selection.base.description == "merge base of HEAD and main"
    assert selection.names == ["other"] and selection.outside == []


def test_default_branch_comes_from_origin_head_in_a_clone(repo, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert changes.default_branch(clone) == "origin/main"


def test_master_is_found_when_there_is_no_main(tmp_path):
    repo = tmp_path / "m"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "master")
    (repo / "f").write_text("x\n")
    commit_all(repo)
    assert changes.default_branch(repo) == "master"


def test_no_default_branch_is_a_clear_error(tmp_path):
    repo = tmp_path / "t"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "trunk")
    (repo / "f").write_text("x\n")
    commit_all(repo)
    with pytest.raises(changes.ChangedError, match="cannot find the default branch") as err:
        changes.find_base(repo, None)
    assert "--changed REF" in err.value.hint


def test_unknown_ref_and_no_repository_are_clear_errors(repo, tmp_path):
    with pytest.raises(changes.ChangedError, match="'no-such-ref' is not a commit"):
        changes.find_base(repo, "no-such-ref")
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(changes.ChangedError, match="not in a git repository"):
        changes.repository_top(outside)


# -- the commands -----------------------------------------------------------------------


@pytest.fixture
def in_repo(repo, monkeypatch, no_entry_points):
    monkeypatch.chdir(repo)
    monkeypatch.setenv("ELEMENTS_PATH", str(repo / "elements"))
    return repo


def test_dib_test_changed_list(in_repo, capsys):
    (in_repo / "elements/lib/install.d/10-lib").write_text("#!/bin/bash\necho changed\n")
    (in_repo / "README.md").write_text("changed\n")
    assert dib_main(["test", "--changed", "--list"]) == 0
    out, err = capsys.readouterr()
    assert out == "app/basic\n"
    assert "changed: elements/lib/install.d/10-lib" in err
    assert "depends on lib" in err
    assert "1 changed file(s) outside the elements, ignored: README.md" in err
    assert "no test-elements/ (nothing to run) in: lib" in err


def test_dib_test_changed_without_changes_exits_0(in_repo, capsys):
    assert dib_main(["test", "--changed"]) == 0
    assert "no element changed: nothing to test" in capsys.readouterr().err


def test_dib_test_changed_with_an_element_name_is_a_usage_error(in_repo, capsys):
    assert dib_main(["test", "app", "--changed"]) == 2
    assert "give no ELEMENT" in capsys.readouterr().err
    assert dib_main(["test", "--changed", "app"]) == 2
    assert "'app' is not a commit" in capsys.readouterr().err


def test_dib_lint_changed_lints_only_the_selection(in_repo, capsys):
    (in_repo / "elements/app/element-deps").write_text("lib\nno-such-element\n")
    (in_repo / "elements/other/install.d").mkdir()
    (in_repo / "elements/other/install.d/10-bad").write_text("#!/bin/bash\necho\n")
    commit_all(in_repo)     # 'other' is broken, but unchanged since HEAD
    (in_repo / "elements/lib/README.rst").write_text("lib\n")
    assert dib_main(["lint", "--no-shellcheck", "--changed", "HEAD", "elements"]) == 1
    out, err = capsys.readouterr()
    assert "no-such-element" in out and "10-bad" not in out
    assert "dib lint: 2 element(s)" in err
    assert dib_main(["lint", "--no-shellcheck", "--changed", "elements"]) == 2
    assert dib_main(["lint", "--no-shellcheck", "--changed=main", "elements"]) == 1
    capsys.readouterr()
    commit_all(in_repo)
    assert dib_main(["lint", "--no-shellcheck", "--changed=HEAD", "elements"]) == 0
    assert "no element changed: nothing to lint" in capsys.readouterr().err


def test_other_elements_cases_that_build_a_changed_element_are_selected(repo):
    from dib.testing import functional as ft
    tree = ElementTree(repo / "elements")
    tree.add("other/test-elements/with-lib", deps=["other", "lib"])
    tree.add("other/test-elements/on-an-os", deps=["other", "operating-system"])
    tree.add("other/test-elements/alone", deps=["other"])
    index = find_elements([repo / "elements"])
    found = {case.id: why for case, why in ft.cases_depending_on(["lib", "app"], index)}
    assert found == {"other/with-lib": "its test-element depends on lib"}
    found = {case.id: why for case, why in ft.cases_depending_on(["base-os"], index)}
    assert found["other/on-an-os"] == \
        "its test-element depends on base-os (through 'operating-system')"
    assert "other/alone" not in found
    # the selected elements' own cases are selected anyway, not twice
    assert "app/basic" not in {c.id for c, _ in ft.cases_depending_on(["app"], index)}


def test_dib_test_changed_adds_cases_that_build_a_deleted_element(in_repo, capsys):
    ElementTree(in_repo / "elements").add("other/test-elements/with-lib",
                                          deps=["other", "lib"])
    commit_all(in_repo)
    git(in_repo, "rm", "-rq", "elements/lib")
    assert dib_main(["test", "--changed=HEAD", "--list"]) == 0
    out, err = capsys.readouterr()
    assert out.split() == ["app/basic", "other/with-lib"]
    assert "other/with-lib  its test-element depends on lib" in err
    assert "deleted, not checked: elements/lib/" in err
