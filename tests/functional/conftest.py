"""Fixtures of the functional tests (helpers live in functional_support.py)."""
from __future__ import annotations

import pytest

from functional_support import Builds


@pytest.fixture
def builds(tmp_path) -> Builds:
    # Inside the test's own directory, so it goes when the test passes.
    return Builds(tmp_path / "builds")
