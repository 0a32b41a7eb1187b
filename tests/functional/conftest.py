"""Fixtures of the functional tests (helpers live in functional_support.py)."""
from __future__ import annotations

import pytest

from functional_support import Builds, LocalRegistry


@pytest.fixture
def builds(tmp_path) -> Builds:
    # Inside the test's own directory, so it goes when the test passes.
    return Builds(tmp_path / "builds")


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> LocalRegistry:
    """A real registry (Debian's docker-registry) on 127.0.0.1 with its own
    storage, for one test module; mark the module ``needs_registry``."""
    running = LocalRegistry(tmp_path_factory.mktemp("registry"))
    running.start()
    yield running
    running.stop()
