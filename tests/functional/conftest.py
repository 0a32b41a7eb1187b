"""Fixtures of the functional tests (helpers live in functional_support.py)."""
from __future__ import annotations

import pytest

from functional_support import Builds


@pytest.fixture
def builds(tmp_path_factory) -> Builds:
    return Builds(tmp_path_factory.mktemp("build", numbered=True))
