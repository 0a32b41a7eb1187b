"""``dib lint``: static checks for elements.

Every check DIB's ``dib-lint`` makes, under the same rule ids where it has one,
plus checks that catch mistakes a build would only show much later (or never):
hook files dib-run-parts would silently skip, ``element-deps`` that name no
element, an invalid ``package-installs`` file, shellcheck warnings and Python
hooks that do not compile. Each rule is one object in
``dib.testing.lint.rules.RULES``: its id, what it checks and its check.

Suppress rules for one file with a line ``# dib-lint: disable=rule1 rule2``
(or for a whole project with ``[dib-lint] ignore = rule1 rule2`` in
``tox.ini`` or ``setup.cfg``, as DIB reads it). A ``sudo`` line in a host
phase is accepted when it carries ``# dib-lint: safe_sudo``, a ``which`` line
when it carries ``dib-lint: which``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from dib.testing.lint.linter import Linter
from dib.testing.lint.paths import (LintUsageError, collect_elements, default_paths,
                                        is_element_dir, project_ignores)
from dib.testing.lint.report import Finding, LintReport, format_json, format_text
from dib.testing.lint.rules import RULES, Rule

__all__ = ["RULES", "Finding", "LintReport", "LintUsageError", "Linter", "Rule",
           "collect_elements", "default_paths", "format_json", "format_text",
           "is_element_dir", "lint", "lint_elements", "project_ignores"]


def lint(paths: Sequence[str | os.PathLike] | None = None, *, shellcheck: bool = True,
         environ: Mapping[str, str] | None = None, ignore: Iterable[str] = (),
         search_paths: Sequence[Path] | None = None) -> LintReport:
    """Lint elements: each path is an element or a directory of elements
    (default: ./elements, else ELEMENTS_PATH)."""
    environ = os.environ if environ is None else environ
    chosen = list(paths) if paths else default_paths(environ)
    return lint_elements(collect_elements(chosen), shellcheck=shellcheck, environ=environ,
                         ignore=ignore, search_paths=search_paths)


def lint_elements(elements: Sequence[Path], *, shellcheck: bool = True,
                  environ: Mapping[str, str] | None = None, ignore: Iterable[str] = (),
                  search_paths: Sequence[Path] | None = None) -> LintReport:
    """Lint these element directories (as ``collect_elements`` finds them)."""
    environ = os.environ if environ is None else environ
    linter = Linter(shellcheck=shellcheck, environ=environ,
                    ignore=set(ignore) | project_ignores(), search_paths=search_paths)
    return linter.run(elements)
