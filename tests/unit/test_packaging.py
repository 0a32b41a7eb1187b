"""Packaging: setup.cfg lists every package; an installed copy finds its elements."""
from __future__ import annotations

import configparser
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from elementtree import ElementTree, repo_root

REPO = repo_root()


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "setup.cfg")
    return parser


def cfg_list(section: str, key: str) -> list[str]:
    return [line.strip() for line in setup_cfg()[section][key].splitlines()
            if line.strip() and not line.strip().startswith("#")]


def console_scripts() -> dict[str, str]:
    lines = cfg_list("options.entry_points", "console_scripts")
    return {name.strip(): target.strip()
            for name, target in (line.split("=", 1) for line in lines)}


def package_dirs() -> dict[str, str]:
    return dict((name.strip(), path.strip()) for name, path in
                (line.split("=", 1) for line in cfg_list("options", "package_dir")))


# -- setup.cfg against the tree ---------------------------------------------

def test_every_python_package_is_listed():
    listed = set(cfg_list("options", "packages"))
    missing = []
    for directory in sorted((REPO / "dib").rglob("*")):
        if not directory.is_dir() or "__pycache__" in directory.parts:
            continue
        if any(directory.glob("*.py")):
            name = ".".join(directory.relative_to(REPO).parts)
            if name not in listed:
                missing.append(name)
    assert not missing, f"add these to [options] packages in setup.cfg: {missing}"
    assert "dib" in listed


def test_listed_packages_exist():
    mapped = package_dirs()
    for name in cfg_list("options", "packages"):
        path = REPO / mapped.get(name, name.replace(".", "/"))
        assert path.is_dir(), f"setup.cfg lists package {name}, but {path} does not exist"


def test_data_packages_mapped_to_top_level_dirs():
    assert package_dirs() == {"dib_elements": "elements", "dib_hooks": "hooks"}
    data = setup_cfg()["options.package_data"]
    assert data["dib_elements"].strip() == "**/*"
    # the helpers, and DIB's shell library ($_LIB) under lib/ with the
    # ramdisk's init scripts
    assert [g.strip() for g in data["dib_hooks"].split(",")] == [
        "*", "lib/*", "lib/scripts/*", "lib/scripts/d/*"]


def test_build_backend_handles_recursive_globs():
    # '**' in package_data needs setuptools 62.3 or newer.
    text = (REPO / "pyproject.toml").read_text()
    assert "setuptools>=62.3" in text


def test_console_scripts():
    scripts = console_scripts()
    for name in ("dib", "disk-image-create", "ramdisk-image-create", "element-info",
                 "dib-lint", "diskimage-builder"):
        assert name in scripts, name
    assert scripts["diskimage-builder"] == "dib.cli.manifest:main"


@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_console_script_targets_import(name):
    module_name, _, attr = console_scripts()[name].partition(":")
    if importlib.util.find_spec(module_name) is None:
        pytest.skip(f"{module_name} is not written yet")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr)), f"{name}: {module_name}:{attr} is not callable"


def test_elements_entry_point():
    lines = cfg_list("options.entry_points", "dib.elements")
    assert lines == ["dib = dib.elements.discovery:shipped_elements_dir"]


def test_shipped_hooks_are_executable():
    hooks = REPO / "hooks"
    files = [p for p in hooks.iterdir() if p.is_file()] if hooks.is_dir() else []
    if not files:
        pytest.skip("hooks/ has no helpers yet")
    not_exec = [p.name for p in files if not os.access(p, os.X_OK)
                and p.name != "__init__.py" and not p.name.endswith((".md", ".rst"))]
    assert not not_exec, f"helpers in hooks/ must be executable: {not_exec}"


# -- a real, non-editable install -------------------------------------------

def _executables(root: Path) -> list[Path]:
    out = []
    for path in root.rglob("*"):
        if "__pycache__" in path.parts or not path.is_file() or path.is_symlink():
            continue
        if path.stat().st_mode & stat.S_IXUSR:
            out.append(path.relative_to(root))
    return sorted(out)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install .`` (not editable) of a copy of this checkout into a fresh venv."""
    base = tmp_path_factory.mktemp("install")
    source = base / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.pyc", "build", "dist", "*.egg-info", ".pytest_cache"))
    venv = base / "venv"
    # No pip inside the venv (ensurepip is slow): this interpreter's pip installs
    # into it with --python.
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a venv here: {made.stderr.strip()[-300:]}")
    pip = subprocess.run([sys.executable, "-m", "pip", "--python",
                          str(venv / "bin" / "python"), "install", "-q", str(source)],
                         capture_output=True, text=True, cwd=base)
    if pip.returncode != 0 and ("Could not find a version" in pip.stderr
                                or "NewConnectionError" in pip.stderr):
        pytest.skip(f"no package index reachable: {pip.stderr.strip()[-300:]}")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import dib, os; print(os.path.dirname(os.path.dirname("
                           "dib.__file__)))"], capture_output=True, text=True,
                          check=True, cwd=base, env=_clean_env()).stdout.strip()
    return {"venv": venv, "bin": venv / "bin", "site": Path(site), "cwd": base,
            "source": source}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "ELEMENTS_PATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def run_installed(installed, *argv, env=None, check=True):
    result = subprocess.run([str(installed["bin"] / argv[0]), *argv[1:]],
                            capture_output=True, text=True, cwd=installed["cwd"],
                            env=env or _clean_env())
    if check:
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result


@pytest.mark.functional
def test_installed_copy_is_not_the_checkout(installed):
    assert installed["site"] != REPO
    assert (installed["site"] / "dib").is_dir()
    assert (installed["site"] / "dib" / "config" / "manifest.py").is_file()


@pytest.mark.functional
def test_installed_entry_point_registered(installed):
    code = ("from importlib.metadata import entry_points\n"
            "from dib.elements.discovery import entry_point_dirs\n"
            "print([e.value for e in entry_points(group='dib.elements')])\n"
            "print(entry_point_dirs())\n")
    out = run_installed(installed, "python", "-c", code).stdout.splitlines()
    assert out[0] == "['dib.elements.discovery:shipped_elements_dir']"
    assert str(installed["site"] / "dib_elements") in out[1]


@pytest.mark.functional
def test_installed_finds_shipped_elements(installed, tmp_path):
    shipped = sorted(p.name for p in (REPO / "elements").iterdir()
                     if p.is_dir() and not p.name.startswith((".", "_")))
    own = ElementTree(tmp_path / "mine")
    own.os_element("probe-os")
    result = run_installed(installed, "dib", "elements", "list",
                           env=_clean_env(ELEMENTS_PATH=str(own.root)))
    listed = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert listed["probe-os"] == str(own.path("probe-os"))
    for name in shipped:
        assert listed.get(name) == str(installed["site"] / "dib_elements" / name), name
    # executable bits of shipped hooks survive packaging
    if shipped:
        source_exec = _executables(REPO / "elements")
        installed_exec = _executables(installed["site"] / "dib_elements")
        assert set(source_exec) <= set(installed_exec), \
            set(source_exec) - set(installed_exec)
    if not shipped:
        pytest.skip("elements/ ships no elements yet")


@pytest.mark.functional
def test_installed_element_info_env(installed, tmp_path):
    if not (REPO / "elements" / "debian-minimal").is_dir():
        pytest.skip("the debian-minimal element is not shipped yet")
    command = f"{installed['bin'] / 'element-info'} --env debian-minimal"
    script = (f'eval "$({command})"\n'
              'echo "$IMAGE_ELEMENT"\n'
              'eval declare -A a=($(get_image_element_array))\n'
              'echo "${a[debian-minimal]}"\n')
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, env=_clean_env())
    assert result.returncode == 0, result.stderr
    names, path = result.stdout.splitlines()
    assert "debian-minimal" in names.split()
    assert path == str(installed["site"] / "dib_elements" / "debian-minimal")


@pytest.mark.functional
def test_installed_hooks(installed):
    hooks = installed["site"] / "dib_hooks"
    run_parts = hooks / "dib-run-parts"
    assert run_parts.is_file()
    assert os.access(run_parts, os.X_OK)
    for name in (p.name for p in (REPO / "hooks").iterdir()
                 if p.is_file() and os.access(p, os.X_OK)):
        assert os.access(hooks / name, os.X_OK), name
    library = REPO / "hooks" / "lib"
    shipped_lib = sorted(str(p.relative_to(library)) for p in library.rglob("*")
                         if p.is_file() and "__pycache__" not in p.parts)
    assert "scripts/d/init-func" in shipped_lib
    assert all((hooks / "lib" / name).is_file() for name in shipped_lib)
    code = "from dib.elements import shipped_hooks_dir; print(shipped_hooks_dir())"
    assert run_installed(installed, "python", "-c", code).stdout.strip() == str(hooks)


@pytest.mark.functional
@pytest.mark.parametrize("script", ["dib", "disk-image-create", "ramdisk-image-create",
                                    "element-info", "dib-lint", "diskimage-builder"])
def test_installed_commands_help(installed, script):
    if script == "dib-lint" and not (installed["source"] / "dib" / "cli" / "lint.py").exists():
        pytest.skip("dib/cli/lint.py is not written yet")
    result = run_installed(installed, script, "--help")
    assert "usage:" in result.stdout
