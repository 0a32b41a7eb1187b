"""Running the rules over elements: each file once through every file rule,
each element through the element rules, then shellcheck over the scripts
found; ignored and disabled rules dropped."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from dib.testing.lint.report import Finding, LintReport, Problem
from dib.testing.lint.rules import (ELEMENT, FILE, RULES, SHELL_FILES, SKIP_DIRS,
                                        ElementView, FileView, read_text)

DISABLE = re.compile(r"^#\s*dib-lint:\s*disable=(.*)$")


class Linter:
    def __init__(self, *, shellcheck: bool = True, environ: Mapping[str, str] | None = None,
                 ignore: Iterable[str] = (), search_paths: Sequence[Path] | None = None
                 ) -> None:
        self.use_shellcheck = shellcheck
        self.environ = dict(os.environ if environ is None else environ)
        self.ignore = set(ignore)
        self.search_paths = search_paths
        self.report = LintReport()
        self._disabled: dict[Path, set[str]] = {}
        self._shell_files: list[tuple[Path, str, str]] = []   # (path, dialect, element)
        self._known: set[str] | None = None
        self._owners: dict[str, list[str]] | None = None

    # -- bookkeeping --------------------------------------------------------
    def add(self, element: str, problem: Problem, rule: str) -> None:
        if rule in self.ignore or rule in self.disabled(problem.path):
            return
        owner = element if problem.element is None else problem.element
        self.report.findings.append(Finding(str(problem.path), problem.line, rule,
                                            problem.message, owner))

    def note(self, text: str) -> None:
        if text not in self.report.notes:
            self.report.notes.append(text)

    def disabled(self, path: Path) -> set[str]:
        """Rules a file turns off with '# dib-lint: disable=RULE...' lines."""
        if path not in self._disabled:
            rules: set[str] = set()
            if path.is_file():
                for line in read_text(path).splitlines():
                    match = DISABLE.match(line.strip())
                    if match:
                        rules.update(match.group(1).split())
            self._disabled[path] = rules
        return self._disabled[path]

    # -- driving -------------------------------------------------------------
    def run(self, elements: Sequence[Path]) -> LintReport:
        self.report.elements = list(elements)
        for element_dir in elements:
            self.lint_element(element_dir)
        if self.use_shellcheck:
            self.run_shell_file_rules()
        self.report.findings.sort(key=lambda f: (f.file, f.line, f.rule, f.message))
        return self.report

    def lint_element(self, element_dir: Path) -> None:
        name = element_dir.name
        view = ElementView(name, element_dir, self.known_elements, self.variable_owners)
        for rule in _of_scope(ELEMENT):
            for problem in rule.check(view):
                self.add(name, problem, rule.id)
        for path in _walk(element_dir):
            self.lint_file(FileView(name, path))

    def lint_file(self, view: FileView) -> None:
        for rule in _of_scope(FILE):
            for problem in rule.check(view):
                self.add(view.element, problem, rule.id)
        dialect = view.shell_dialect
        if dialect is not None:
            self._shell_files.append((view.path, dialect, view.element))

    def run_shell_file_rules(self) -> None:
        for rule in _of_scope(SHELL_FILES):
            files = [entry for entry in self._shell_files
                     if rule.id not in self.ignore and rule.id not in self.disabled(entry[0])]
            for problem in rule.check(files, self.note):
                self.add("", problem, rule.id)

    def known_elements(self) -> set[str]:
        """Every element name (and provided name) on the search path, the
        elements being linted included."""
        if self._known is None:
            from dib.elements.discovery import find_elements
            index = find_elements(self._search_dirs())
            known = set(index.elements)
            for el in index.elements.values():
                try:
                    known.update(el.provides)
                except OSError:
                    pass
            known.update(p.name for p in self.report.elements)
            self._known = known
        return self._known

    def variable_owners(self) -> dict[str, list[str]]:
        """DIB_* variables that elements on the search path (the ones being
        linted included) set in environment.d and document."""
        if self._owners is None:
            from dib.elements.discovery import find_elements
            from dib.elements.variables import setters
            dirs = {el.name: el.path for el in find_elements(self._search_dirs()).elements.values()}
            dirs.update({p.name: p for p in self.report.elements})
            self._owners = setters(dirs)
        return self._owners

    def _search_dirs(self) -> list[Path]:
        dirs = [element_dir.parent for element_dir in self.report.elements]
        if self.search_paths is not None:
            dirs += list(self.search_paths)
        else:
            dirs += [Path(p) for p in self.environ.get("ELEMENTS_PATH", "").split(":") if p]
            try:
                from dib.elements.discovery import entry_point_dirs
                dirs += entry_point_dirs()
            except Exception as exc:  # a broken plugin must not stop the lint
                self.note(f"could not list installed element packages: {exc}")
        unique: list[Path] = []
        for d in dirs:
            if d.is_dir() and all(d.resolve() != u.resolve() for u in unique):
                unique.append(d)
        return unique


def _of_scope(scope: str):
    return [rule for rule in RULES.values() if rule.scope == scope]


def _walk(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath, name)
            if path.is_file():
                yield path
