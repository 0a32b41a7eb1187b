"""The element test harness: lint, hook unit tests and test-element expectations.

The public API for unit-testing hooks (no root, no network, well under a
second per hook):

* ``HookTestCase`` - a ``testtools.TestCase`` with a fake root, stub commands,
  ``run_hook`` and assertions (``assertCalled``, ``assertFileContains``...).
* ``FakeTargetRoot`` - fixture: a temporary minimal root filesystem.
* ``StubCommands`` - fixture: recording stub executables first on ``PATH``.
* ``run_hook`` / ``HookResult`` - run one hook with DIB's environment; chroot
  phases run in a bubblewrap sandbox whose ``/`` is the fake root.
* ``load_python_hook`` - import an extensionless Python hook as a module.
* ``check_expectations`` - check a built tree against ``expect.yaml``.

See docs/element-author-guide.md.
"""
from __future__ import annotations

from dib.testing.fixtures import (DEFAULT_STUBS, CallRecord, FakeTargetRoot, HarnessError,
                                  StubCommands, StubSpec)
from dib.testing.hooks import (CHROOT_PHASES, HOST_PHASES, HookResult, load_python_hook,
                               run_hook)

__all__ = [
    "CHROOT_PHASES", "DEFAULT_STUBS", "HOST_PHASES", "CallRecord", "FakeTargetRoot",
    "HarnessError", "HookResult", "HookTestCase", "StubCommands", "StubSpec",
    "check_expectations", "load_expectations", "load_python_hook", "run_hook",
]


def __getattr__(name: str):
    # testtools and jsonschema load only when these are used.
    if name == "HookTestCase":
        from dib.testing.case import HookTestCase
        return HookTestCase
    if name in ("check_expectations", "load_expectations"):
        from dib.testing import expect
        return getattr(expect, name)
    raise AttributeError(f"module 'dib.testing' has no attribute {name!r}")
