"""The shipped elements' hook unit tests (elements/*/tests/test_*.py) for
unittest discovery, which does not go into those directories by itself:
``stestr run`` (see .stestr.conf), ``python -m subunit.run discover -t tests
tests/element_hooks`` or ``python -m unittest discover -t tests -s
tests/element_hooks``. pytest runs the same files directly (``dib test --unit``)."""
from pathlib import Path

from dib.testing.loader import element_tests_loader

load_tests = element_tests_loader(Path(__file__).resolve().parents[2] / "elements")
