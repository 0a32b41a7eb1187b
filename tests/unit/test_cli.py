"""The command-line front ends: dib, disk-image-create, ramdisk-image-create."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dib.cli import dic
from dib.cli.main import main as dib_main
from elementtree import subprocess_env


@pytest.fixture
def build_tree(elements_env):
    """A small but complete tree: our own 'base' shadows any shipped one."""
    tree = elements_env
    tree.add("base", hooks={"install": ["01-base"], "cleanup": ["90-base-tidy"]})
    tree.os_element("test-os", hooks={"root": ["08-bootstrap"],
                                      "pre-install": ["00-sources"],
                                      "finalise": ["50-grub"]})
    tree.add("app", deps=["helper"], hooks={"install": ["20-app"],
                                             "post-install": ["10-configure"]},
             files={"install.d/30-readme.txt": "not a hook\n"})
    tree.add("helper", hooks={"extra-data": ["10-fetch"]})
    return tree


# -- dry runs ----------------------------------------------------------------

def check_plan_text(out: str, *, with_base: bool = True) -> None:
    lines = out.splitlines()
    elements = lines[0]
    assert elements.startswith("elements: ")
    if with_base:
        assert elements.split()[1] == "base"
    for name in ("test-os", "app", "helper"):
        assert name in elements.split()
    for header in ("root.d [host]", "extra-data.d [host]", "pre-install.d [chroot]",
                   "install.d [chroot]", "post-install.d [chroot]",
                   "finalise.d [chroot]"):
        assert header in lines
    order = [lines.index(h) for h in ("root.d [host]", "extra-data.d [host]",
                                      "pre-install.d [chroot]", "install.d [chroot]",
                                      "post-install.d [chroot]", "finalise.d [chroot]")]
    assert order == sorted(order)
    rows = [line.split() for line in lines if line.startswith("  ")]
    for row in (["08-bootstrap", "test-os"], ["20-app", "app"], ["10-fetch", "helper"],
                ["10-configure", "app"], ["50-grub", "test-os"]):
        assert row in rows
    assert any("install.d/30-readme.txt (app)" in line for line in lines)


def test_dib_build_dry_run(build_tree, capsys):
    assert dib_main(["build", "--dry-run", "test-os", "app"]) == 0
    out = capsys.readouterr().out
    check_plan_text(out)
    assert "  01-base  base" in out.splitlines()
    assert "cleanup.d [host]" in out


def test_disk_image_create_dry_run(build_tree, capsys):
    assert dic.disk_image_create(["--dry-run", "-n", "-p", "vim,curl", "-o", "x.tar",
                                  "-t", "tar", "test-os", "app"]) == 0
    out = capsys.readouterr().out
    check_plan_text(out, with_base=False)
    assert "base" not in out.splitlines()[0].split()
    assert "packages [chroot]: install-packages vim curl" in out


def test_ramdisk_image_create_adds_ramdisk_element(build_tree, capsys):
    build_tree.add("my-ramdisk", hooks={"post-install": ["99-build-ramdisk"]})
    assert dic.ramdisk_image_create(["--dry-run", "--ramdisk-element", "my-ramdisk",
                                     "test-os"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[1:3] == ["my-ramdisk", "base"]
    assert "99-build-ramdisk" in out


def test_dry_run_reports_hook_clash(build_tree, capsys):
    build_tree.add("clash", hooks={"install": ["20-app"]})
    assert dic.disk_image_create(["--dry-run", "test-os", "app", "clash"]) == 1
    err = capsys.readouterr().err
    assert str(build_tree.path("app") / "install.d" / "20-app") in err
    assert str(build_tree.path("clash") / "install.d" / "20-app") in err
    assert "Traceback" not in err


def test_disk_image_create_needs_elements(capsys):
    assert dic.disk_image_create([]) == 2
    assert "operating system element" in capsys.readouterr().err


def test_disk_image_create_unknown_element(build_tree, capsys):
    assert dic.disk_image_create(["--dry-run", "test-oss"]) == 1
    err = capsys.readouterr().err
    assert "'test-oss' not found" in err and "'test-os'" in err


def test_disk_image_create_bad_flag(capsys):
    assert dic.disk_image_create(["--frobnicate", "x"]) == 2
    assert "--frobnicate" in capsys.readouterr().err


def test_version(capsys):
    from dib import __version__
    with pytest.raises(SystemExit) as exit_:
        dic.disk_image_create(["--version"])
    assert exit_.value.code == 0
    assert __version__ in capsys.readouterr().out


# -- dib elements ------------------------------------------------------------

def test_elements_list(build_tree, capsys):
    assert dib_main(["elements", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line.split()[1] for line in lines}
    for name in ("app", "base", "helper", "test-os"):
        assert listed[name] == str(build_tree.path(name))
    names = [line.split()[0] for line in lines]
    assert names == sorted(names)


def test_elements_show(build_tree, capsys):
    build_tree.add("app", files={"package-installs.yaml": "vim:\ncurl:\n",
                                 "environment.d/10-app.bash": "export X=1\n",
                                 "block-device-default.yaml": "- local_loop: {}\n",
                                 "test-elements/smoke/element-deps": "app\n"})
    assert dib_main(["elements", "show", "app"]) == 0
    out = capsys.readouterr().out
    assert "name:     app" in out
    assert f"path:     {build_tree.path('app')}" in out
    assert "deps:     helper" in out
    assert "provides: -" in out
    assert "install.d: 20-app, 30-readme.txt (not run:" in out
    assert "post-install.d: 10-configure" in out
    assert "environment.d: 10-app.bash" in out
    assert "packages: curl vim" in out
    assert "block-device: default" in out
    assert "test-elements: smoke" in out


def test_elements_show_unknown(build_tree, capsys):
    assert dib_main(["elements", "show", "hepler"]) == 1
    err = capsys.readouterr().err
    assert "'hepler' not found" in err and "'helper'" in err


def test_elements_graph(build_tree, capsys):
    assert dib_main(["elements", "graph", "-n", "test-os", "app"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digraph elements {")
    assert '"app" [shape=box];' in out
    assert '"helper" [shape=ellipse];' in out
    assert '"app" -> "helper";' in out
    assert '"operating-system" [shape=diamond];' in out
    assert '"test-os" -> "operating-system"' in out
    assert '"base"' not in out
    assert out.rstrip().endswith("}")
    assert dib_main(["elements", "graph", "test-os"]) == 0
    assert '"base" [shape=box];' in capsys.readouterr().out


def test_elements_needs_subcommand(capsys):
    assert dib_main(["elements"]) == 2


def test_dib_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        dib_main(["--help"])
    out = capsys.readouterr().out
    assert "build" in out and "elements" in out


def test_dib_build_help_has_every_flag(capsys):
    from dib.config.settings import SETTINGS
    with pytest.raises(SystemExit):
        dib_main(["build", "--help"])
    out = capsys.readouterr().out
    for setting in SETTINGS:
        for flag in setting.flags:
            assert flag in out


def test_python_m_dib(build_tree, tmp_path):
    result = subprocess.run([sys.executable, "-m", "dib", "elements", "list"],
                            env=subprocess_env(), cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "test-os" in result.stdout
