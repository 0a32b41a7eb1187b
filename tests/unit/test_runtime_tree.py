"""Reading overlay layers from their directories: what the merged tree holds."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dib.runtime.tree import is_whiteout, layer_paths, path_in_layers


def layer(root: Path, name: str, files: dict[str, str] | None = None) -> Path:
    top = root / name
    top.mkdir()
    for relative, text in (files or {}).items():
        (top / relative).parent.mkdir(parents=True, exist_ok=True)
        (top / relative).write_text(text)
    return top


def whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
    except PermissionError:
        pytest.skip("making a whiteout (a 0/0 character device) needs root")


def opaque(path: Path) -> None:
    try:
        os.setxattr(path, "user.overlay.opaque", b"y")
    except OSError:
        pytest.skip("this filesystem has no user xattrs")


def test_a_path_in_any_layer_exists(tmp_path):
    low = layer(tmp_path, "low", {"etc/a": "a"})
    high = layer(tmp_path, "high", {"etc/b": "b"})
    assert path_in_layers([high, low], "/etc/a")
    assert path_in_layers([high, low], "etc/b")
    assert not path_in_layers([high, low], "etc/c")
    assert not path_in_layers([], "etc/a")


def test_a_whiteout_deletes_what_is_below(tmp_path):
    low = layer(tmp_path, "low", {"etc/a": "a", "var/x/y": "y"})
    high = layer(tmp_path, "high")
    whiteout(high / "etc/a")
    whiteout(high / "var/x")
    assert is_whiteout(high / "etc/a")
    assert not path_in_layers([high, low], "etc/a")
    assert not path_in_layers([high, low], "var/x/y")
    assert path_in_layers([low], "etc/a")


def test_an_opaque_directory_hides_the_same_directory_below(tmp_path):
    low = layer(tmp_path, "low", {"tmp/old": "", "etc/kept": ""})
    high = layer(tmp_path, "high", {"tmp/new": ""})
    opaque(high / "tmp")
    assert not path_in_layers([high, low], "tmp/old")
    assert path_in_layers([high, low], "tmp/new")
    assert path_in_layers([high, low], "etc/kept")


def test_a_file_in_place_of_a_directory_hides_what_was_in_it(tmp_path):
    low = layer(tmp_path, "low", {"opt/tool/bin": ""})
    high = layer(tmp_path, "high", {"opt/tool": "now a file"})
    assert not path_in_layers([high, low], "opt/tool/bin")
    assert path_in_layers([high, low], "opt/tool")


def test_layer_paths_lists_changes_and_gives_up_on_an_opaque_directory(tmp_path):
    changes = layer(tmp_path, "changes", {"etc/a": "", "etc/b": ""})
    assert layer_paths(changes, limit=10) == ["etc", "etc/a", "etc/b"]
    assert layer_paths(changes, limit=2) is None
    opaque(changes / "etc")
    assert layer_paths(changes, limit=10) is None
