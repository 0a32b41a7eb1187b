"""``dib test``'s cases: the test-elements asked for, found on the element
search path, and what each one's build is made of (elements, environment,
output formats, checked metadata)."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from dib.elements import ElementIndex
from dib.elements.discovery import unknown_element
from dib.elements.model import Element
from dib.elements.resolve import OPERATING_SYSTEM
from dib.errors import DibError, ElementError

OUTPUT_FORMATS_FILE = "test-output-formats"
DEFAULT_OS = "debian-minimal"
DEFAULT_FORMATS = ("tar",)


class CaseSelectionError(ElementError):
    """``dib test`` was asked for something that does not exist."""

    exit_code = 2


class CaseError(DibError):
    """A test-element cannot be built as given (broken metadata)."""


@dataclass(frozen=True)
class Case:
    element: str          # the element under test
    name: str             # the test-element's name
    path: Path            # .../<element>/test-elements/<name>
    element_path: Path    # .../<element>
    release: str = ""     # DIB_RELEASE for this run ('': whatever the environment says)

    @property
    def id(self) -> str:
        return f"{self.element}/{self.label}"

    @property
    def label(self) -> str:
        """The case's name in reports: with ``[release]`` when it has one."""
        return f"{self.name}[{self.release}]" if self.release else self.name

    @property
    def search_dir(self) -> Path:
        """The directory prepended to ELEMENTS_PATH for this case."""
        return self.path.parent


def _cases_of(element: Element) -> list[Case]:
    return [Case(element.name, name, path, element.path)
            for name, path in element.test_elements.items()]


def cases_of_elements(names: Sequence[str], index: ElementIndex) -> tuple[list[Case], list[str]]:
    """Every case of the named elements, and the names of those that have none."""
    cases: list[Case] = []
    without: list[str] = []
    for name in names:
        found = _cases_of(index[name])
        cases.extend(found)
        if not found:
            without.append(name)
    return cases, without


def cases_depending_on(names: Sequence[str], index: ElementIndex
                       ) -> list[tuple[Case, str]]:
    """Cases of the other elements whose own element-deps name one of ``names``
    (or a name one of them provides), each with the reason. A test-element is
    an element too: it builds whatever it lists, so a change there reaches it
    even when the element under test does not depend on it."""
    wanted = set(names)
    provided = {virtual: name for name in names if name in index
                for virtual in index[name].provides}
    found = []
    for element_name in index.names():
        if element_name in wanted:
            continue
        for case in _cases_of(index[element_name]):
            deps = Element(case.name, case.path).deps
            hit = next((d for d in deps if d in wanted or d in provided), None)
            if hit is None:
                continue
            via = hit if hit in wanted else provided[hit]
            through = "" if hit == via else f" (through '{hit}')"
            found.append((case, f"its test-element depends on {via}{through}"))
    return found


def discover_cases(targets: Sequence[str], index: ElementIndex, *, all_elements: bool = False
                   ) -> list[Case]:
    """``ELEMENT`` → all its cases; ``ELEMENT/CASE`` → that one; ``all_elements``
    → every element on the search path that has test-elements."""
    if all_elements:
        cases = [c for name in index.names() for c in _cases_of(index[name])]
        if not cases and not targets:
            raise CaseSelectionError("no element on the search path has test-elements",
                                 hint="add test-elements/<case>/ to an element, or put its "
                                      "directory on ELEMENTS_PATH")
    else:
        cases = []
    if not targets and not all_elements:
        raise CaseSelectionError("no element given", hint="name one or more elements "
                                                      "(ELEMENT or ELEMENT/CASE), or use --all")
    for target in targets:
        element_name, _, case_name = target.strip("/").partition("/")
        if element_name not in index:
            raise _usage(unknown_element(element_name, index.names()))
        element = index[element_name]
        available = _cases_of(element)
        if not available:
            raise CaseSelectionError(f"element '{element_name}' has no test-elements "
                                 f"({element.path / 'test-elements'} is missing or empty)",
                                 hint="add a case: test-elements/<case>/element-deps naming "
                                      f"'{element_name}'; or run its unit tests with --unit")
        if case_name:
            chosen = [c for c in available if c.name == case_name]
            if not chosen:
                names = [c.name for c in available]
                close = difflib.get_close_matches(case_name, names, n=3, cutoff=0.5)
                hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close
                        else f"its cases: {', '.join(names)}")
                raise CaseSelectionError(f"element '{element_name}' has no test-element "
                                     f"'{case_name}'", hint=hint)
            available = chosen
        cases.extend(available)
    return list(dict.fromkeys(cases))


_RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_releases(text: str) -> list[str]:
    """``--release bookworm,trixie`` → the releases, in order, each once."""
    words = [w for w in re.split(r"[\s,]+", text) if w]
    if not words:
        raise CaseSelectionError("--release names no release",
                                 hint="give one or more, separated by commas: "
                                      "--release bookworm,trixie")
    for word in words:
        if not _RELEASE_NAME.match(word):
            raise CaseSelectionError(f"--release: '{word}' is not a release name",
                                     hint="use the names DIB_RELEASE takes, such as "
                                          "bookworm or noble")
    return list(dict.fromkeys(words))


def with_releases(cases: Sequence[Case], releases: Sequence[str]) -> list[Case]:
    """Each case once per release (none given: the cases as they are)."""
    if not releases:
        return list(cases)
    return [replace(case, release=release) for case in cases for release in releases]


def _usage(exc: ElementError) -> CaseSelectionError:
    return CaseSelectionError(exc.message, hint=exc.hint)


def elements_for_unit(targets: Sequence[str], index: ElementIndex, *, all_elements: bool
                      ) -> list[Element]:
    names: list[str] = []
    if all_elements:
        names = [n for n in index.names() if index[n].tests_dir is not None]
    elif not targets:
        raise CaseSelectionError("no element given", hint="name one or more elements, or --all")
    for target in targets:
        name = target.strip("/").partition("/")[0]
        if name not in index:
            raise _usage(unknown_element(name, index.names()))
        names.append(name)
    return [index[n] for n in dict.fromkeys(names)]


# -- one case's inputs -------------------------------------------------------


def read_output_formats(case_dir: Path) -> tuple[str, ...]:
    """``test-output-formats``: output types, separated by spaces, commas or
    lines (``#`` starts a comment); default ``tar``."""
    path = case_dir / OUTPUT_FORMATS_FILE
    if not path.is_file():
        return DEFAULT_FORMATS
    words: list[str] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0]
        words.extend(w for w in re.split(r"[\s,]+", line) if w)
    if not words:
        raise CaseError(f"{path}: no output type listed",
                        hint="list output types such as 'tar' or 'qcow2', or remove the file")
    return tuple(dict.fromkeys(words))


def case_environ(case: Case, environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k != "break"}   # no interactive shells
    rest = env.get("ELEMENTS_PATH", "")
    env["ELEMENTS_PATH"] = str(case.search_dir) + (":" + rest if rest else "")
    if case.release:
        # The same variable a build reads from the environment; the
        # release reaches the phase cache's keys through it too.
        env["DIB_RELEASE"] = case.release
    return env


def provides_os(names: Sequence[str], index: ElementIndex) -> bool:
    """Whether the dependency closure of ``names`` provides an operating system
    (unknown names are left for the resolver to report)."""
    seen: set[str] = set()
    queue = list(names)
    while queue:
        name = queue.pop()
        if name in seen or name not in index:
            continue
        seen.add(name)
        element = index[name]
        if OPERATING_SYSTEM in element.provides:
            return True
        queue.extend(element.deps)
    return False


def case_elements(case: Case, index: ElementIndex, *, default_os: str = DEFAULT_OS,
                  boot: bool = False) -> list[str]:
    names = [case.element, case.name]
    if not provides_os(names, index):
        names.append(default_os)
    if boot and "vm" not in names:
        names.append("vm")
    return names


def check_case_metadata(case: Case, index: ElementIndex) -> dict[str, Any]:
    """Read everything the case declares; raise a DibError naming the file.
    Returns the parsed expectations."""
    from dib.testing.expect import load_expectations
    element = index.get(case.name) if case.name in index else Element(case.name, case.path)
    if element.path.resolve() != case.path.resolve():
        raise CaseError(f"test-element '{case.id}' is shadowed by the element "
                        f"'{case.name}' in {element.path}",
                        hint="give the test-element a name no other element uses")
    if not (case.path / "element-deps").is_file():
        raise CaseError(f"{case.path}/element-deps is missing",
                        hint=f"a test-element depends on the element under test: list "
                             f"'{case.element}' in it")
    element.load_all()
    read_output_formats(case.path)
    return load_expectations(case.path)
