"""dib elements doc: the element reference pages and their --check."""
from __future__ import annotations

from pathlib import Path

import pytest

from dib.cli.main import main as dib_main
from dib.testing.reference import check_pages, render_pages, summary_line, write_pages

HOOK = '#!/bin/bash\nif [ "${DIB_DEBUG_TRACE:-0}" -gt 0 ]; then\n    set -x\nfi\nset -eu\n'
APP_README = """===
app
===

Runs the app at boot. It needs an operating system.

DIB_APP_MODE
  :Default: ``fast``
  :Description: How the app runs.
"""


@pytest.fixture
def reference_tree(tree):
    """os-a provides operating-system and sets DIB_OS_A_RELEASE; app depends
    on it (through the provided name) and on tool, which has no README."""
    tree.add("os-a", provides=["operating-system"], files={
        "README.rst": "====\nos-a\n====\n\nAn operating system.\n\nDIB_OS_A_RELEASE\n"
                      "  The release.\n",
        "environment.d/10-os-a.bash": "export DIB_OS_A_RELEASE=${DIB_OS_A_RELEASE:-one}\n"})
    tree.add("tool", hooks={"root": {"10-tool": HOOK}})
    tree.add("app", deps=["operating-system", "tool"], hooks={
        "install": {"50-app": HOOK + 'echo "${DIB_APP_MODE:-fast} $DIB_OS_A_RELEASE"\n',
                    "app-source-install/40-build": HOOK + 'echo "$DIB_APP_SECRET"\n'},
        "post-install": {"60-enable": HOOK}},
        files={"README.rst": APP_README, "package-installs.yaml": "curl:\n",
               "environment.d/20-app.bash": "export DIB_APP_OUTPUT=1\n"})
    return tree


def pages_of(tree) -> dict[str, str]:
    return render_pages(sorted(p for p in tree.root.iterdir() if p.is_dir()))


def row(page: str, variable: str) -> list[str]:
    """The cells of a variable's row in the page's list-table."""
    lines = page.splitlines()
    start = lines.index(f"   * - ``{variable}``")
    return [lines[start][7:], lines[start + 1][7:], lines[start + 2][7:]]


def test_page_has_readme_deps_provides_hooks_and_variables(reference_tree):
    page = pages_of(reference_tree)["app.rst"]
    assert "Runs the app at boot." in page and "How the app runs." in page
    assert page.index(":Depends on:") < page.index("Runs the app at boot.")
    assert (":Depends on: ``operating-system`` (provided by `os-a <os-a.rst>`__), "
            "`tool <tool.rst>`__\n") in page
    assert ":install.d: ``app-source-install/40-build``, ``50-app``\n" in page
    assert ":post-install.d: ``60-enable``\n" in page
    assert ":environment.d: ``20-app.bash``\n" in page
    assert "``package-installs.yaml``" in page
    assert row(page, "DIB_APP_MODE") == ["``DIB_APP_MODE``", "yes", "``install.d/50-app``"]
    assert row(page, "DIB_APP_SECRET") == [
        "``DIB_APP_SECRET``", "**no**", "``install.d/app-source-install/40-build``"]
    assert row(page, "DIB_OS_A_RELEASE")[1] == "by `os-a <os-a.rst>`__, which sets it"
    assert ":Sets: ``DIB_APP_OUTPUT``\n" in page
    assert ":Set by dib: ``DIB_DEBUG_TRACE``\n" in page
    assert "* - ``DIB_DEBUG_TRACE``" not in page


def test_provider_page_links_its_users(reference_tree):
    pages = pages_of(reference_tree)
    assert ":Provides: ``operating-system``\n" in pages["os-a.rst"]
    assert ":Used by: `app <app.rst>`__\n" in pages["os-a.rst"]
    assert ":Used by: `app <app.rst>`__\n" in pages["tool.rst"]
    assert "This element has no README.rst." in pages["tool.rst"]


def test_index_lists_every_element_with_its_summary(reference_tree):
    index = pages_of(reference_tree)["index.rst"]
    assert "* `app <app.rst>`__: Runs the app at boot.\n" in index
    assert "* `os-a <os-a.rst>`__: An operating system.\n" in index
    assert "* `tool <tool.rst>`__\n" in index


@pytest.mark.parametrize("readme, summary", [
    ("===\nx\n===\n\nDoes x, e.g. this. Then more.\n", "Does x, e.g. this."),
    ("x\n=\n\nUses ``a. B`` here. More.\n", "Uses ``a. B`` here."),
    ("===\nx\n===\n\nShows this::\n\n    code\n", "Shows this:"),
    ("", ""),
])
def test_summary_is_the_first_sentence(readme, summary):
    assert summary_line(readme) == summary


def test_check_detects_stale_missing_and_removed_pages(reference_tree, tmp_path):
    out = tmp_path / "docs"
    write_pages(pages_of(reference_tree), out)
    assert check_pages(pages_of(reference_tree), out) == []

    readme = reference_tree.path("app") / "README.rst"
    readme.write_text(readme.read_text() + "\nDIB_APP_SECRET\n  The secret.\n")
    (out / "tool.rst").unlink()
    (out / "gone.rst").write_text((out / "os-a.rst").read_text())   # a generated page
    (out / "notes.rst").write_text("Somebody's own page.\n")
    problems = check_pages(pages_of(reference_tree), out)
    assert problems == [f"{out / 'app.rst'}: stale (the elements say something else now)",
                        f"{out / 'tool.rst'}: missing",
                        f"{out / 'gone.rst'}: no such element any more (remove the page)"]

    write_pages(pages_of(reference_tree), out)
    assert check_pages(pages_of(reference_tree), out) == []
    assert not (out / "gone.rst").exists() and (out / "notes.rst").exists()


def test_cli_writes_then_checks(reference_tree, tmp_path, capsys):
    out = tmp_path / "docs"
    assert dib_main(["elements", "doc", "-o", str(out), str(reference_tree.root)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["app.rst", "index.rst", "os-a.rst",
                                                     "tool.rst"]
    assert dib_main(["elements", "doc", "--check", "-o", str(out),
                     str(reference_tree.root)]) == 0
    capsys.readouterr()

    hook = reference_tree.path("tool") / "root.d" / "20-more"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    before = (out / "tool.rst").read_text()
    assert dib_main(["elements", "doc", "--check", "-o", str(out),
                     str(reference_tree.root)]) == 1
    err = capsys.readouterr().err
    assert f"{out / 'tool.rst'}: stale" in err and "run: dib elements doc" in err
    assert (out / "tool.rst").read_text() == before     # --check writes nothing


def test_cli_path_that_is_not_a_directory(tmp_path, capsys):
    assert dib_main(["elements", "doc", "--check", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_shipped_reference_is_up_to_date():
    root = Path(__file__).resolve().parents[2]
    if not (root / "elements").is_dir() or not (root / "docs" / "elements").is_dir():
        pytest.skip("no shipped elements and reference in this tree")
    pages = render_pages(sorted(p for p in (root / "elements").iterdir() if p.is_dir()))
    problems = check_pages(pages, root / "docs" / "elements")
    assert problems == [], "run: dib elements doc\n" + "\n".join(problems)


def test_two_elements_of_one_name_are_an_error(reference_tree, tmp_path, capsys):
    other = tmp_path / "more" / "tool"
    other.mkdir(parents=True)
    (other / "README.rst").write_text("tool\n")
    assert dib_main(["elements", "doc", "-o", str(tmp_path / "docs"),
                     str(reference_tree.root), str(tmp_path / "more")]) == 2
    err = capsys.readouterr().err
    assert "two elements named 'tool'" in err and str(other) in err
    assert not (tmp_path / "docs").exists()
