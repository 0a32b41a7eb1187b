"""The README's test command collects tests/functional and tests/unit in one
pytest run, where two test files of the same name cannot both be imported."""
from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_file_name_is_used_twice():
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted(TESTS.glob("*/test_*.py")):
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(TESTS)} and {path.relative_to(TESTS)}")
        seen.setdefault(path.name, path)
    assert clashes == [], "rename one of: " + "; ".join(clashes)
