"""element-info: plain output, and --env output that bash evaluates."""
from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
import yaml

from dib.cli.element_info import main
from elementtree import subprocess_env


@pytest.fixture
def info_tree(elements_env):
    tree = elements_env
    tree.os_element("zz-os", deps=["mm-dep"])
    tree.add("mm-dep", deps=["aa-leaf"])
    tree.add("aa-leaf")
    tree.add("top", deps=["zz-os"])
    return tree


def test_plain_output_one_per_line(info_tree, capsys):
    assert main(["top"]) == 0
    assert capsys.readouterr().out == "top\nzz-os\nmm-dep\naa-leaf\n"


@pytest.mark.parametrize("flag", ["-d", "--expand-dependencies"])
def test_expand_dependencies_accepted(info_tree, capsys, flag):
    assert main([flag, "top"]) == 0
    assert capsys.readouterr().out == "top\nzz-os\nmm-dep\naa-leaf\n"


def test_env_output_text(info_tree, capsys):
    assert main(["--env", "top"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("export IMAGE_ELEMENT='top zz-os mm-dep aa-leaf'\n")
    assert "export -f get_image_element_array;" in out


def test_env_yaml_sorted(info_tree, capsys):
    assert main(["-e", "top"]) == 0
    out = capsys.readouterr().out
    script = subprocess.run(["bash", "-c", out + 'printf %s "$IMAGE_ELEMENT_YAML"'],
                            capture_output=True, text=True, check=True).stdout
    data = yaml.safe_load(script)
    assert list(data) == ["aa-leaf", "mm-dep", "top", "zz-os"]
    assert data["top"] == str(info_tree.path("top"))


def test_env_evaluated_by_bash(info_tree, tmp_path):
    """The whole round trip the driver does, with a real element-info process."""
    command = " ".join(shlex.quote(a) for a in
                       [sys.executable, "-m", "dib.cli.element_info", "--env", "top"])
    script = (f'eval "$({command})"\n'
              'echo "$IMAGE_ELEMENT"\n'
              # as elements use it: the function prints the body of the array
              # (no parentheses), so the caller adds them
              'eval declare -A a=($(get_image_element_array))\n'
              'echo "${a[mm-dep]}"\n'
              'echo "${#a[@]}"\n'
              # the function survives into a child bash (it is exported)
              'bash -c \'eval declare -A b=\\($(get_image_element_array)\\); '
              'echo "${b[top]}"\'\n')
    result = subprocess.run(["bash", "-c", script], env=subprocess_env(), cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == ["top zz-os mm-dep aa-leaf", str(info_tree.path("mm-dep")), "4",
                     str(info_tree.path("top"))]


def test_quotes_in_paths_survive_eval(tmp_path, monkeypatch, capsys):
    from elementtree import ElementTree
    tree = ElementTree(tmp_path / "it's here")
    tree.os_element("os")
    monkeypatch.setenv("ELEMENTS_PATH", str(tree.root))
    assert main(["--env", "os"]) == 0
    out = capsys.readouterr().out
    result = subprocess.run(["bash", "-c", out + 'printf %s "$IMAGE_ELEMENT_YAML"'],
                            capture_output=True, text=True, check=True).stdout
    assert yaml.safe_load(result) == {"os": str(tree.path("os"))}


def test_unknown_element_is_an_error(info_tree, capsys):
    assert main(["toop"]) == 1
    err = capsys.readouterr().err
    assert "element-info: error: element 'toop' not found" in err
    assert "'top'" in err
    assert "Traceback" not in err


def test_missing_os_is_an_error(info_tree, capsys):
    assert main(["aa-leaf"]) == 1
    assert "operating-system" in capsys.readouterr().err


def test_needs_an_element(capsys):
    assert main([]) == 2
    assert "element-info" in capsys.readouterr().err


def test_bad_elements_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ELEMENTS_PATH", str(tmp_path / "nowhere"))
    assert main(["x"]) == 1
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
