"""Element discovery, the Element model and the data-file readers."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dib.elements import discovery
from dib.elements.discovery import element_paths, find_elements
from dib.elements.formats import read_lines, sort_n_key
from dib.elements.model import Element
from dib.errors import ElementError
from elementtree import ElementTree, subprocess_env, write


# -- discovery ---------------------------------------------------------------

def test_finds_every_directory(tree):
    tree.add("a")
    tree.add("b")
    write(tree.root / "not-an-element", "file")
    index = find_elements([tree.root])
    assert index.names() == ["a", "b"]
    assert index["a"].path == tree.root / "a"
    assert "a" in index and "zzz" not in index


def test_hidden_and_underscore_dirs_ignored(tree):
    tree.add("real")
    tree.add(".git")
    tree.add("_private")
    tree.add("__pycache__")
    assert find_elements([tree.root]).names() == ["real"]


def test_earlier_path_entry_wins_with_warning(tmp_path, caplog):
    first = ElementTree(tmp_path / "first")
    second = ElementTree(tmp_path / "second")
    first.add("shared", deps=["x"])
    second.add("shared", deps=["y"])
    second.add("only-second")
    with caplog.at_level(logging.WARNING, logger="dib.elements.discovery"):
        index = find_elements([first.root, second.root])
    assert index["shared"].path == first.root / "shared"
    assert index["shared"].deps == ("x",)
    assert "only-second" in index
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "shared" in warnings[0]
    assert str(first.root / "shared") in warnings[0]
    assert str(second.root / "shared") in warnings[0]
    assert index.overridden == [(first.root / "shared", second.root / "shared")]


def test_same_directory_twice_is_not_an_override(tree, caplog):
    tree.add("a")
    with caplog.at_level(logging.WARNING):
        index = find_elements([tree.root, tree.root])
    assert index.names() == ["a"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_non_directory_entry_is_an_error(tmp_path, tree):
    tree.add("a")
    missing = tmp_path / "does-not-exist"
    with pytest.raises(ElementError) as err:
        find_elements([tree.root, missing])
    assert str(missing) in str(err.value)
    assert "ELEMENTS_PATH" in str(err.value)
    afile = write(tmp_path / "plain-file", "x")
    with pytest.raises(ElementError) as err:
        find_elements([afile])
    assert str(afile) in str(err.value)


def test_element_paths_order(tmp_path, monkeypatch):
    one, two, plugin = tmp_path / "one", tmp_path / "two", tmp_path / "plugin"
    for d in (one, two, plugin):
        d.mkdir()
    monkeypatch.setattr(discovery, "entry_point_dirs", lambda: [plugin])
    paths = element_paths({"ELEMENTS_PATH": f"{one}:{two}"})
    assert paths == [one, two, plugin]
    # empty entries are dropped; an entry-point dir already on the path is not repeated
    assert element_paths({"ELEMENTS_PATH": f":{plugin}::{one}"}) == [plugin, one]
    assert element_paths({}) == [plugin]


def test_elements_path_beats_entry_points(tmp_path, monkeypatch, caplog):
    user = ElementTree(tmp_path / "user")
    plugin = ElementTree(tmp_path / "plugin")
    user.add("thing")
    plugin.add("thing")
    plugin.add("extra")
    monkeypatch.setattr(discovery, "entry_point_dirs", lambda: [plugin.root])
    with caplog.at_level(logging.WARNING):
        index = discovery.discover({"ELEMENTS_PATH": str(user.root)})
    assert index["thing"].path == user.root / "thing"
    assert index["extra"].path == plugin.root / "extra"
    assert any("thing" in r.getMessage() for r in caplog.records)


def test_shipped_dirs_exist():
    assert discovery.shipped_hooks_dir().name in ("hooks", "dib_hooks")
    assert discovery.shipped_elements_dir().name in ("elements", "dib_elements")
    # our own entry point target is always on the search path
    shipped = discovery.shipped_elements_dir()
    if shipped.is_dir():
        assert shipped.resolve() in [p.resolve() for p in discovery.entry_point_dirs()]


def test_entry_points_from_installed_packages(tmp_path):
    """A third-party package registers element dirs through dib.elements
    (a directory string, a callable returning one, or a module)."""
    site = tmp_path / "site"
    elems = ElementTree(tmp_path / "third-party-elements")
    elems.add("from-plugin")
    modpkg = site / "modelems"
    write(modpkg / "__init__.py", "")
    (modpkg / "inmodule").mkdir()
    write(site / "thirdparty.py", textwrap.dedent(f"""\
        def elements_dir():
            return {str(elems.root)!r}
        """))
    dist = site / "thirdparty-1.0.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: thirdparty\nVersion: 1.0\n")
    write(dist / "entry_points.txt", textwrap.dedent("""\
        [dib.elements]
        aaa = thirdparty:elements_dir
        bbb = modelems
        """))
    code = ("from dib.elements.discovery import entry_point_dirs\n"
            "for d in entry_point_dirs(): print(d)\n")
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env['PYTHONPATH']}"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, cwd=tmp_path).stdout.split("\n")
    dirs = [Path(line) for line in out if line]
    assert dirs[0] == elems.root
    assert dirs[1] == modpkg
    assert dirs.index(elems.root) < dirs.index(modpkg)


# -- the Element model -------------------------------------------------------

def test_deps_and_provides_keep_order_and_drop_blanks(tree):
    path = tree.add("e", files={"element-deps": "b\n\n  a \nb\n",
                                "element-provides": "operating-system\n"})
    element = Element("e", path)
    assert element.deps == ("b", "a")
    assert element.provides == ("operating-system",)
    assert Element("none", tree.add("none")).deps == ()


def test_read_lines(tmp_path):
    assert read_lines(write(tmp_path / "f", "x\ny\n\nx\n")) == ["x", "y"]


def test_hooks_marked_with_skip_reasons(tree):
    path = tree.add("e", hooks={"install": ["10-run", "20-also_ok"]},
                    files={"install.d/30-not-exec": "#!/bin/bash\n",
                           "install.d/40-script.sh": "#!/bin/bash\n"},
                    executable=["install.d/40-script.sh"])
    (path / "install.d" / "50-dir").mkdir()
    element = Element("e", path)
    hooks = {h.name: h for h in element.hooks("install")}
    assert hooks["10-run"].runs and hooks["20-also_ok"].runs
    assert hooks["30-not-exec"].skipped_reason == "not executable"
    assert "^[0-9A-Za-z_-]+$" in hooks["40-script.sh"].skipped_reason
    assert hooks["50-dir"].skipped_reason == "not a regular file"
    assert element.phases == ("install",)
    assert element.hooks("root") == []


def test_symlinked_hook_runs(tree):
    path = tree.add("e", hooks={"install": ["10-real"]})
    os.symlink("10-real", path / "install.d" / "20-link")
    hooks = {h.name: h for h in Element("e", path).hooks("install")}
    assert hooks["20-link"].runs


def test_environment_files_sorted_and_filtered(tree):
    path = tree.add("e", files={"environment.d/10-b.bash": "x=1\n",
                                "environment.d/02-a": "y=1\n",
                                "environment.d/bad name": "z=1\n"})
    assert [p.name for p in Element("e", path).environment_files] == ["02-a", "10-b.bash"]


def test_source_repositories(tree):
    path = tree.add("e", files={"source-repository-e": (
        "# comment\n\nfoo git /opt/foo https://example.invalid/foo.git main\n"
        "bar tar /opt/bar https://example.invalid/bar.tgz\n")})
    repos = Element("e", path).source_repositories
    assert [(r.name, r.type, r.destination, r.ref) for r in repos] == [
        ("foo", "git", "/opt/foo", "main"), ("bar", "tar", "/opt/bar", None)]


def test_short_source_repository_line_is_an_error(tree):
    path = tree.add("e", files={"source-repository-e": "foo git /opt/foo\n"})
    with pytest.raises(ElementError) as err:
        Element("e", path).source_repositories
    assert "source-repository-e" in str(err.value) and "'e'" in str(err.value)


def test_block_device_files_and_test_elements(tree):
    path = tree.add("e", files={"block-device-default.yaml": "- local_loop: {}\n",
                                "block-device-arm64.yaml": "- local_loop: {}\n",
                                "test-elements/case-a/element-deps": "e\n"})
    element = Element("e", path)
    assert sorted(element.block_device_files) == ["arm64", "default"]
    assert list(element.test_elements) == ["case-a"]


def test_good_data_files_load(tree):
    path = tree.add("e", files={
        "package-installs.yaml": "vim:\ncurl:\n  phase: pre-install.d\n",
        "pkg-map": '{"distro": {"debian": {"vim": "vim-nox"}}, "default": {"curl": "curl"}}',
        "svc-map": "cron:\n  default: cron\n  redhat: crond\n"})
    element = Element("e", path)
    element.load_all()
    assert set(element.package_installs) == {"vim", "curl"}
    assert element.pkg_map["distro"]["debian"]["vim"] == "vim-nox"
    assert element.svc_map["cron"]["redhat"] == "crond"


def test_json_package_installs(tree):
    path = tree.add("e", files={"package-installs.json": '{"vim": null}'})
    assert Element("e", path).package_installs == {"vim": None}


# broken files: ElementError naming the element, the file and the line

def test_broken_package_installs_yaml(tree):
    path = tree.add("e", files={"package-installs.yaml": "vim:\ncurl: [unclosed\n"})
    with pytest.raises(ElementError) as err:
        Element("e", path).load_all()
    message = str(err.value)
    assert "'e'" in message
    assert str(path / "package-installs.yaml") in message
    assert ":2" in message or ":3" in message


def test_broken_package_installs_json(tree):
    path = tree.add("e", files={"package-installs.json": '{\n  "vim": null,\n}\n'})
    with pytest.raises(ElementError) as err:
        Element("e", path).package_installs
    assert f"{path / 'package-installs.json'}:3" in str(err.value)


def test_broken_pkg_map_json(tree):
    path = tree.add("e", files={"pkg-map": '{\n "default": {\n  "a": "b"\n  "c": "d"}}\n'})
    with pytest.raises(ElementError) as err:
        Element("e", path).pkg_map
    assert f"{path / 'pkg-map'}:4" in str(err.value)
    assert "'e'" in str(err.value)


def test_pkg_map_bad_shape(tree):
    path = tree.add("e", files={"pkg-map": '{"distros": {}}'})
    with pytest.raises(ElementError) as err:
        Element("e", path).pkg_map
    assert "distros" in str(err.value) and "pkg-map" in str(err.value)
    path = tree.add("f", files={"pkg-map": '{"default": {"a": 1}}'})
    with pytest.raises(ElementError) as err:
        Element("f", path).pkg_map
    assert "default.a" in str(err.value)


def test_broken_svc_map_yaml(tree):
    path = tree.add("e", files={"svc-map": "cron:\n  default: cron\n   bad: x\n"})
    with pytest.raises(ElementError) as err:
        Element("e", path).svc_map
    assert f"{path / 'svc-map'}:3" in str(err.value)


def test_svc_map_bad_shape(tree):
    path = tree.add("e", files={"svc-map": "cron: crond\n"})
    with pytest.raises(ElementError) as err:
        Element("e", path).svc_map
    assert "cron" in str(err.value) and "svc-map" in str(err.value)


def test_broken_data_file_through_cli_has_no_traceback(elements_env, capsys):
    elements_env.os_element("os")
    elements_env.add("bad", deps=["os"], files={"pkg-map": "{ nope"})
    from dib.cli.main import main
    status = main(["elements", "show", "bad"])
    err = capsys.readouterr().err
    assert status != 0
    assert "Traceback" not in err
    assert "pkg-map:1" in err


# -- sort -n -----------------------------------------------------------------

def test_sort_n_key():
    names = ["10-b", "9-a", "no-number", "01-x", "10-a", "100", "_under", "-dash", "2",
             "05.5-frac"]
    ordered = sorted(names, key=sort_n_key)
    assert ordered[:4] == ["-dash", "_under", "no-number", "01-x"]
    assert ordered[4:] == ["2", "05.5-frac", "9-a", "10-a", "10-b", "100"]


def test_sort_n_matches_coreutils(tmp_path):
    names = ["10-b", "9-a", "no-number", "01-x", "10-a", "100", "_under", "-dash", "2",
             "1-Z", "1-a", "1_a", "00-zero", "0", "zz"]
    result = subprocess.run(["sort", "-n"], input="\n".join(names) + "\n", text=True,
                            capture_output=True, env={"LC_ALL": "C", "PATH": os.defpath})
    if result.returncode != 0:
        pytest.skip("coreutils sort is not available")
    assert sorted(names, key=sort_n_key) == result.stdout.split()
