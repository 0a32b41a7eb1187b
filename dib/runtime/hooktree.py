"""TMP_HOOKS_PATH: every element's directory merged into one, as DIB does.

Hooks, environment.d, bin/, static/ and the rest of each element are copied
in element order; dib's own helpers go into bin/ first so an element's bin/
can replace one. DIB's shell library (``$_LIB``: img-functions,
common-functions, ramdisk-functions ...) goes into lib/, so hooks see it on
the host and, at /tmp/in_target.d/lib, in the chroot, and a change to it
counts in the phase cache keys like any element file.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable, Mapping

from dib.elements.model import Element

LIB_DIR = "lib"
NOT_MERGED = {"test-elements", "tests", "README.rst", "element-deps", "element-provides",
              "expect.yaml", "test-output-formats",
              "__pycache__", "__init__.py"}


def merge_hooks_tree(elements: Iterable[Element], helpers: Path, target: Path) -> None:
    add_helper_commands(helpers, target)
    add_shell_library(helpers, target)
    add_elements(elements, target)


def add_helper_commands(helpers: Path, target: Path) -> None:
    """dib's helper commands (dib-run-parts, install-packages ...) into bin/."""
    (target / "bin").mkdir(parents=True, exist_ok=True)
    for helper in sorted(helpers.iterdir()):
        if helper.is_file() and not helper.name.startswith(("_", ".")):
            shutil.copy2(helper, target / "bin" / helper.name)


def add_shell_library(helpers: Path, target: Path) -> None:
    """DIB's shell library ($_LIB) into lib/."""
    if (helpers / LIB_DIR).is_dir():
        shutil.copytree(helpers / LIB_DIR, target / LIB_DIR, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))


def add_elements(elements: Iterable[Element], target: Path) -> None:
    """Each element's files, in element order (a later element's file wins)."""
    target.mkdir(parents=True, exist_ok=True)
    for element in elements:
        for entry in sorted(element.path.iterdir()):
            if not is_merged(entry.name):
                continue
            destination = target / entry.name
            if entry.is_dir():
                shutil.copytree(entry, destination, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(entry, destination)


def is_merged(name: str) -> bool:
    """Whether an element's top-level file or directory reaches the hooks
    tree. Metadata and tests do not; block-device-*.yaml is read by the
    build itself, never by hooks."""
    return name not in NOT_MERGED and not (
        name.startswith("block-device-") and name.endswith(".yaml"))


def write_install_type(target: Path, install_type: str) -> None:
    """DIB records the default install type as an environment.d file."""
    env_dir = target / "environment.d"
    env_dir.mkdir(exist_ok=True)
    (env_dir / "11-dib-install-type.bash").write_text(
        f"export DIB_DEFAULT_INSTALLTYPE=${{DIB_DEFAULT_INSTALLTYPE:-\"{install_type}\"}}\n")


def write_package_installs(target: Path, squashed: Mapping) -> Path:
    """The squashed package lists that package-installs-v2 reads in the chroot."""
    path = target / "package-installs.json"
    path.write_text(json.dumps(squashed, indent=1, sort_keys=True) + "\n")
    return path
