"""``HookTestCase``: a testtools base class for unit-testing element hooks.

Every test gets a fresh fake root (``self.root``) and a set of recording stub
commands (``self.stubs``, the ``stub_commands`` class attribute says which).
Tests run under pytest, ``python -m testtools.run`` and ``python -m unittest``::

    class TestMotd(HookTestCase):
        element = "docs/examples/motd-banner"      # a path, or a name on ELEMENTS_PATH

        def test_writes_banner(self):
            result = self.run_hook("install", "50-motd-banner")
            self.assertHookSucceeded(result)
            self.assertCalled("install-packages", "figlet")
            self.assertFileContains("/etc/motd", "Welcome")
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import testtools

from dib.testing.fixtures import DEFAULT_STUBS, CallRecord, FakeTargetRoot, StubCommands
from dib.testing.hooks import DEFAULT_TIMEOUT, HookResult, load_python_hook, run_hook


class HookTestCase(testtools.TestCase):
    """Base class: fixtures, ``run_hook`` and assertions about calls and files."""

    #: Default element for ``run_hook`` (a directory, or a name to look up).
    element: str | os.PathLike | None = None
    #: Extra directories to look elements up in (before ELEMENTS_PATH).
    elements_path: Sequence[str | os.PathLike] = ()
    #: Commands stubbed in every test (more with ``self.stubs.add``).
    stub_commands: Iterable[str] | Mapping[str, object] = DEFAULT_STUBS
    #: Variables every ``run_hook`` gets (each call's ``env`` wins).
    hook_env: Mapping[str, str] = {}
    #: Seconds before a hook is killed.
    hook_timeout: float = DEFAULT_TIMEOUT

    def setUp(self) -> None:
        super().setUp()
        self.root = self.useFixture(FakeTargetRoot())
        self.stubs = self.useFixture(StubCommands(self.stub_commands))
        self.last_result: HookResult | None = None

    # Running ---------------------------------------------------------------
    def element_dir(self, element: str | os.PathLike | None = None) -> Path:
        from dib.testing.hooks import find_element_dir
        target = element if element is not None else self.element
        if target is None:
            self.fail("no element given: set the class attribute 'element' "
                      "or pass element=...")
        return find_element_dir(target, search=self._search())

    def _search(self) -> list[Path]:
        base = Path(self._test_file()).parent if self._test_file() else Path.cwd()
        return [base / p if not os.path.isabs(p) else Path(p) for p in self.elements_path]

    def _test_file(self) -> str | None:
        import sys
        module = sys.modules.get(type(self).__module__)
        return getattr(module, "__file__", None)

    def run_hook(self, *args, env: Mapping[str, str] | None = None,
                 stdin: str | bytes | None = None, timeout: float | None = None,
                 sandbox: bool | None = None) -> HookResult:
        """``run_hook(phase, hook)`` for the class's element, or
        ``run_hook(element, phase, hook)``. Returns a ``HookResult``; the stub
        calls it made are in ``result.calls`` (and ``self.stubs.calls()``)."""
        if len(args) == 2:
            element, (phase, hook) = self.element, args
        elif len(args) == 3:
            element, phase, hook = args
        else:
            raise TypeError("run_hook(phase, hook) or run_hook(element, phase, hook)")
        merged = dict(self.hook_env)
        merged.update(env or {})
        self.stubs.reset()
        result = run_hook(self.element_dir(element), phase, hook, root=self.root,
                          stubs=self.stubs, env=merged, stdin=stdin,
                          timeout=self.hook_timeout if timeout is None else timeout,
                          search=self._search(), sandbox=sandbox)
        self.last_result = result
        self.addDetail(f"hook-output-{phase}-{hook}", _text_content(result.output))
        return result

    def load_python_hook(self, *args):
        """``load_python_hook(path)`` or ``load_python_hook(phase, hook)`` of the
        class's element: the hook file imported as a module."""
        if len(args) == 1:
            return load_python_hook(args[0])
        phase, hook = args
        return load_python_hook(self.element_dir() / f"{phase}.d" / hook)

    # Assertions: results ---------------------------------------------------
    def assertHookSucceeded(self, result: HookResult | None = None) -> None:
        result = result or self.last_result
        if result is None or result.exit_code != 0:
            code = result.exit_code if result else "none"
            self.fail(f"hook failed (exit status {code}); its output:\n"
                      f"{result.output if result else ''}")

    def assertHookFailed(self, result: HookResult | None = None,
                         exit_code: int | None = None) -> None:
        result = result or self.last_result
        if result is None or result.exit_code == 0:
            self.fail("hook succeeded but was expected to fail; its output:\n"
                      f"{result.output if result else ''}")
        if exit_code is not None and result.exit_code != exit_code:
            self.fail(f"hook exited {result.exit_code}, expected {exit_code}; its "
                      f"output:\n{result.output}")

    def assertOutputContains(self, text: str, result: HookResult | None = None) -> None:
        result = result or self.last_result
        output = result.output if result else ""
        if text not in output:
            self.fail(f"{text!r} not in the hook's output:\n{output}")

    # Assertions: stub calls -------------------------------------------------
    def _calls(self, name: str) -> list[CallRecord]:
        return self.stubs.calls(name)

    def assertCalled(self, name: str, *args: str, exact: bool = False,
                     times: int | None = None, stdin: str | None = None) -> CallRecord:
        """A stub ``name`` was called with ``args`` appearing in order and next
        to each other in its arguments (all of them if ``exact``). Returns the
        first matching call."""
        calls = self._calls(name)
        if name not in self.stubs.specs:
            self.fail(f"'{name}' is not stubbed; stub it with self.stubs.add({name!r}) "
                      "or the stub_commands class attribute")
        matching = [c for c in calls if _args_match(c.args, list(args), exact)
                    and (stdin is None or c.stdin == stdin)]
        if not matching:
            seen = "\n".join("  " + " ".join(c.argv) for c in calls) or "  (never called)"
            want = " ".join([name, *args])
            self.fail(f"expected a call like '{want}'"
                      + (f" with stdin {stdin!r}" if stdin is not None else "")
                      + f"; calls to {name}:\n{seen}")
        if times is not None and len(matching) != times:
            self.fail(f"expected {times} matching call(s) to {name}, got {len(matching)}")
        return matching[0]

    def assertNotCalled(self, name: str, *args: str) -> None:
        calls = [c for c in self._calls(name) if _args_match(c.args, list(args), False)]
        if calls:
            self.fail(f"'{name}' was called: " + "; ".join(" ".join(c.argv) for c in calls))

    def assertCallOrder(self, *names: str) -> None:
        """The first calls of these stubs happened in this order."""
        order = [c.name for c in self.stubs.calls()]
        positions = []
        for name in names:
            if name not in order:
                self.fail(f"'{name}' was never called; calls: {order}")
            positions.append(order.index(name))
        if positions != sorted(positions):
            self.fail(f"calls happened in the order {order}, expected {list(names)}")

    # Assertions: files -----------------------------------------------------
    def assertFileExists(self, path: str) -> None:
        if not self.root.exists(path):
            self.fail(f"{path} does not exist in the fake root")

    def assertFileAbsent(self, path: str) -> None:
        if self.root.exists(path):
            self.fail(f"{path} exists in the fake root")

    def assertFileContains(self, path: str, text: str | None = None, *,
                           regex: str | None = None) -> None:
        self.assertFileExists(path)
        content = self.root.read(path)
        if text is not None and text not in content:
            self.fail(f"{path} does not contain {text!r}; it has:\n{content}")
        if regex is not None and not re.search(regex, content, re.MULTILINE):
            self.fail(f"{path} does not match /{regex}/; it has:\n{content}")

    def assertFileMode(self, path: str, mode: int | str) -> None:
        self.assertFileExists(path)
        want = int(mode, 8) if isinstance(mode, str) else mode
        got = stat.S_IMODE(self.root.join(path).lstat().st_mode)
        if got != want:
            self.fail(f"{path} has mode {got:04o}, expected {want:04o}")


def _args_match(have: list[str], want: list[str], exact: bool) -> bool:
    if exact:
        return have == want
    if not want:
        return True
    width = len(want)
    return any(have[i:i + width] == want for i in range(len(have) - width + 1))


def _text_content(text: str):
    from testtools.content import text_content
    return text_content(text)
