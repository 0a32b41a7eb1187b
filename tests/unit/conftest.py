"""Fixtures shared by the unit tests."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from elementtree import ElementTree  # noqa: E402


@pytest.fixture
def tree(tmp_path) -> ElementTree:
    """An empty element directory under tmp_path."""
    return ElementTree(tmp_path / "elements")


@pytest.fixture
def elements_env(tree, monkeypatch) -> ElementTree:
    """``tree`` is the only ELEMENTS_PATH entry (the shipped elements still follow)."""
    monkeypatch.setenv("ELEMENTS_PATH", str(tree.root))
    return tree


@pytest.fixture
def no_entry_points(monkeypatch):
    """Discovery sees ELEMENTS_PATH only, not the shipped or installed elements."""
    from dib.elements import discovery
    monkeypatch.setattr(discovery, "entry_point_dirs", lambda: [])


@pytest.fixture(autouse=True)
def _keep_root_logger():
    """The CLIs reconfigure the root logger; put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
