"""Which DIB_* variables an element reads and sets, and which its README names.

An element's interface is mostly its ``DIB_*`` variables. This module finds
them from the files a build uses (hooks, ``environment.d``, ``bin/``,
``package-installs.yaml`` conditions, ...) so that ``dib lint`` can ask for
each one to be documented and ``dib elements doc`` can list them.

A mention of ``DIB_X`` counts as a read unless it is the target of an
assignment (``DIB_X=...``, ``export DIB_X=...``) or a bare ``export DIB_X`` /
``unset DIB_X``. Comments count: a hook that explains ``DIB_X`` in a comment
depends on it, as the phase cache already assumes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from dib.elements.model import environment_files

VARIABLE = re.compile(r"\bDIB_[A-Za-z0-9_]+\b")
# What may stand before the name of a variable being assigned or exported.
ASSIGN_BEFORE = re.compile(r"(?:^|[\s;&|(])(?:(?:export|local|declare|typeset|readonly)"
                           r"\s+(?:-\w+\s+)*)?$")
DECLARE_BEFORE = re.compile(r"\b(?:export|unset|local|declare|typeset|readonly)\s+"
                            r"(?:-\w+\s+)*(?:[A-Za-z_]\w*\s+)*$")
# Not what a build reads: tests, test cases, the README, files copied verbatim
# into the image.
NOT_READ = {"README.rst", "tests", "test-elements", "static", "__pycache__", ".git"}


@dataclass
class ElementVariables:
    """The DIB_* variables of one element."""
    # name → (file, line of its first read there), one per file, files sorted
    reads: dict[str, list[tuple[Path, int]]] = field(default_factory=dict)
    sets: set[str] = field(default_factory=set)     # assigned in environment.d

    def files_reading(self, name: str) -> list[Path]:
        return [path for path, _line in self.reads.get(name, [])]


def scan_element(element_dir: Path) -> ElementVariables:
    """Every DIB_* variable the element's files read, and those its
    environment.d assigns. A variable that environment.d assigns before any
    read (``export DIB_X=1`` rather than ``export DIB_X=${DIB_X:-1}``) is the
    element's own value, not an input, and is not counted as read."""
    found = ElementVariables()
    own = _assigned_before_read(environment_files(element_dir))
    for path in build_files(element_dir):
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            reads, sets = classify_line(line)
            found.sets.update(sets if path.parent.name == "environment.d" else ())
            for name in reads:
                if name in own:
                    continue
                places = found.reads.setdefault(name, [])
                if not places or places[-1][0] != path:   # files come one at a time
                    places.append((path, number))
    found.sets.update(own)
    return found


def classify_line(line: str) -> tuple[list[str], list[str]]:
    """The DIB_* names a line reads and those it assigns, each in order.
    In a comment line every name is a read (it documents a dependency)."""
    comment = line.lstrip().startswith("#")
    reads: list[str] = []
    sets: list[str] = []
    for match in VARIABLE.finditer(line):
        before, after = line[:match.start()], line[match.end():]
        if comment or _in_quotes(before):
            reads.append(match.group())   # a comment or a message names it
        elif after.startswith("=") and ASSIGN_BEFORE.search(before):
            sets.append(match.group())
        elif after.startswith("+=") and ASSIGN_BEFORE.search(before):
            reads.append(match.group())   # appending reads the value first
            sets.append(match.group())
        elif DECLARE_BEFORE.search(before) and not after.startswith("="):
            continue                        # export DIB_X / unset DIB_X
        else:
            reads.append(match.group())
    return reads, sets


def _in_quotes(before: str) -> bool:
    """Whether text ending here is inside a quoted string (quotes counted
    without regard to escapes: good enough for messages)."""
    return before.count('"') % 2 == 1 or before.count("'") % 2 == 1


def _assigned_before_read(env_files: Iterable[Path]) -> set[str]:
    """Names whose first appearance in environment.d (sourced in order) is an
    unconditional assignment. On one line the right-hand side is read before
    the left is set, so ``export X=${X:-1}`` reads X first. An indented
    assignment is taken to be conditional (inside if/case): the user's value
    may survive it, so it does not make the variable the element's own."""
    seen: set[str] = set()
    own: set[str] = set()
    for path in env_files:
        for line in (_text(path) or "").splitlines():
            reads, sets = classify_line(line)
            seen.update(reads)
            for name in sets:
                if name not in seen and not line[:1].isspace():
                    own.add(name)
                    seen.add(name)
    return own


def build_files(element_dir: Path) -> list[Path]:
    """The element's files a build may read, sorted: everything but tests,
    test-elements, static/ and the README."""
    out: list[Path] = []
    for path in sorted(element_dir.rglob("*")):
        rel = path.relative_to(element_dir).parts
        if any(part in NOT_READ for part in rel) or not path.is_file():
            continue
        if path.suffix in (".pyc", ".pyo") or any(part.startswith(".") for part in rel):
            continue
        out.append(path)
    return out


def readme_names(element_dir: Path) -> set[str]:
    """Every DIB_* name the element's README.rst mentions."""
    text = _text(element_dir / "README.rst") or ""
    return set(VARIABLE.findall(text))


def setters(element_dirs: Mapping[str, Path]) -> dict[str, list[str]]:
    """Variable → the elements (by name, sorted) whose environment.d assigns
    it and whose README documents it: such a variable belongs to them."""
    out: dict[str, list[str]] = {}
    for name in sorted(element_dirs):
        directory = element_dirs[name]
        documented = readme_names(directory)
        for variable in scan_element(directory).sets & documented:
            out.setdefault(variable, []).append(name)
    return out


@dataclass(frozen=True)
class VariableStatus:
    """One variable an element reads, and where it is documented."""
    name: str
    places: tuple[tuple[Path, int], ...]    # (file, line) of the first read in each file
    documented: bool                        # the element's README names it
    engine: bool                            # the build itself sets it for every hook
    set_by: tuple[str, ...]                 # other elements that set and document it

    @property
    def undocumented(self) -> bool:
        return not (self.documented or self.engine or self.set_by)


def variable_statuses(name: str, element_dir: Path, *, engine: frozenset[str],
                      owners: Mapping[str, list[str]]) -> list[VariableStatus]:
    """The variables an element reads, sorted by name, each with where it is
    documented: ``owners`` is what ``setters`` returns for the elements
    around it, ``engine`` the variables the build defines."""
    documented = readme_names(element_dir)
    found = scan_element(element_dir)
    return [VariableStatus(variable, tuple(places), variable in documented,
                           variable in engine,
                           tuple(o for o in owners.get(variable, ()) if o != name))
            for variable, places in sorted(found.reads.items())]


def _text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


__all__ = ["ElementVariables", "VARIABLE", "VariableStatus", "build_files", "classify_line",
           "readme_names", "scan_element", "setters", "variable_statuses"]
