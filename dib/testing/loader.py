"""Element hook tests for unittest discovery: stestr, ``python -m subunit.run
discover``, ``python -m unittest discover``.

Hook tests live in ``<element>/tests/test_*.py``. Those directories are not
Python packages (element names have dashes, and an element tree is not
importable), so unittest's discovery does not go into them. A package that
discovery does reach hands them over through the ``load_tests`` protocol::

    # tests/element_hooks/__init__.py
    from pathlib import Path
    from dib.testing.loader import element_tests_loader

    load_tests = element_tests_loader(Path(__file__).parents[2] / "elements")

and ``.stestr.conf`` points at that package (``test_path=./tests/element_hooks``,
``top_dir=./tests``). Each test file is imported under the name
``element_tests.<element>.<file stem>``, so a test's id says which element
it belongs to and stays the same from one run (or stestr worker) to the next.
A file that cannot be imported, or holds no ``unittest.TestCase`` tests
(pytest-style functions, which unittest cannot see), becomes one failing
test named after it.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import os
import sys
import traceback
import unittest
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

MODULE_PREFIX = "element_tests"
DEFAULT_PATTERN = "test*.py"


def element_test_files(dirs: Iterable[str | os.PathLike], pattern: str = DEFAULT_PATTERN
                       ) -> Iterator[tuple[str, Path]]:
    """(element, test file) for every ``<dir>/<element>/tests/<pattern>``, an
    element found in two directories taken from the first, as on
    ELEMENTS_PATH."""
    seen: set[str] = set()
    for directory in map(Path, dirs):
        if not directory.is_dir():
            continue
        for element in sorted(directory.iterdir()):
            tests = element / "tests"
            if element.name in seen or not tests.is_dir():
                continue
            seen.add(element.name)
            for path in sorted(tests.iterdir()):
                if path.is_file() and fnmatch.fnmatch(path.name, pattern):
                    yield element.name, path


def module_name(element: str, path: Path) -> str:
    return f"{MODULE_PREFIX}.{element}.{path.stem}"


def load_element_tests(loader: unittest.TestLoader, dirs: Iterable[str | os.PathLike],
                       pattern: str | None = None) -> unittest.TestSuite:
    """The tests of every element test file under ``dirs``."""
    suite = loader.suiteClass()
    for element, path in element_test_files(dirs, pattern or DEFAULT_PATTERN):
        name = module_name(element, path)
        try:
            module = _import(name, path)
        except Exception:     # a broken file is a failing test, not a dead run
            suite.addTest(LoadFailure(name, f"cannot import {path}:\n"
                                            f"{traceback.format_exc()}"))
            continue
        tests = loader.loadTestsFromModule(module)
        if tests.countTestCases() == 0:
            # pytest-style functions would pass unseen here: say so.
            suite.addTest(LoadFailure(name, f"{path} has no unittest tests; write them as "
                                            "methods of dib.testing.HookTestCase (or "
                                            "testtools.TestCase) so stestr runs them"))
            continue
        suite.addTests(tests)
    return suite


def element_tests_loader(*dirs: str | os.PathLike) -> Callable[..., unittest.TestSuite]:
    """A ``load_tests`` function for a package's ``__init__.py`` that loads
    the element tests under ``dirs`` (default: the ELEMENTS_PATH entries)."""
    def load_tests(loader: unittest.TestLoader, standard_tests: unittest.TestSuite,
                   pattern: str | None) -> unittest.TestSuite:
        standard_tests.addTests(load_element_tests(loader, dirs or _elements_path(), pattern))
        return standard_tests
    return load_tests


def _elements_path() -> Sequence[str]:
    return [p for p in os.environ.get("ELEMENTS_PATH", "").split(":") if p]


def _import(name: str, path: Path):
    """Import ``path`` as ``name``; HookTestCase finds the element next to its
    test through the module's ``__file__``, so the module must be in
    sys.modules."""
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class LoadFailure(unittest.TestCase):
    """Stands for a test file whose tests could not be loaded."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__("runTest")
        self._name, self._message = name, message

    def id(self) -> str:
        return self._name

    def __str__(self) -> str:
        return self._name

    def runTest(self) -> None:
        self.fail(self._message)
