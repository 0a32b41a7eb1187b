"""The rules of dib lint, each one object: its id, what it checks, and the
function that checks it.

A rule looks at one file of an element (``FILE``), at one element as a whole
(``ELEMENT``), or, like shellcheck, at every shell script of the run at once
(``SHELL_FILES``, see dib.testing.lint.shellcheck). Ids from DIB's dib-lint
are kept as they are.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable

from dib.elements.formats import check_pkg_map
from dib.elements.model import HOOK_NAME
from dib.elements.package_installs import validate as validate_package_installs
from dib.elements.phases import HOOK_PHASE_NAMES
from dib.elements.variables import variable_statuses
from dib.errors import DibError, ElementError
from dib.runtime.environment import engine_variables
from dib.testing.lint import shellcheck
from dib.testing.lint.report import Problem

FILE, ELEMENT, SHELL_FILES = "file", "element", "shell-files"

# Phases whose hooks run on the host, where a bare sudo touches the host. DIB's
# pattern is unanchored, so post-root.d and pre-finalise.d match too.
SAFE_SUDO_DIRS = re.compile(r"(root\.d|extra-data\.d|block-device\.d|finalise\.d|cleanup\.d)$")
SAFE_SUDO_OK = re.compile(r"dib-lint: safe_sudo|^#|install-packages|TARGET_ROOT|"
                          r"IMAGE_BLOCK_DEVICE|TMP_MOUNT_PATH|TMP_IMAGE_PATH")
BAD_INDENT = re.compile(r"^(?: {4})* {1,3}[^ ]")
TAB_INDENT = re.compile(r"^ *\t")
EXPORT_SUBST = re.compile(r"export .*\$\(")
SET_E = re.compile(r"^set -[^ ]*e")
SET_U = re.compile(r"^set -[^ ]*u")
SET_PIPEFAIL = re.compile(r"^set -o pipefail")
SHELL_SHEBANG = re.compile(r"\b(bash|sh|dash)\b")
SKIP_DIRS = {".git", "__pycache__", ".tox", ".venv", ".pytest_cache", ".mypy_cache"}
# The old plain package lists package-installs reads from a phase directory:
# data, not hooks, so not being executable is right.
PLAIN_PACKAGE_LIST = "package-installs-"
# Files whose own format is checked elsewhere (or not at all): no shell rules.
NOT_SCRIPTS = (".rst", ".yaml", ".yml", ".py")


@dataclass(frozen=True)
class Rule:
    id: str
    help: str
    check: Callable[..., Iterable[Problem]]
    scope: str = FILE


class FileView:
    """One file of an element, read once for every rule."""

    def __init__(self, element: str, path: Path) -> None:
        self.element = element
        self.path = path
        self.name = path.name

    @cached_property
    def raw(self) -> bytes | None:
        return read_bytes(self.path)

    @property
    def is_text(self) -> bool:
        return self.raw is not None and b"\0" not in self.raw[:8192]

    @cached_property
    def lines(self) -> list[str]:
        return (self.raw or b"").decode("utf-8", "replace").splitlines()

    @property
    def first(self) -> str:
        return self.lines[0] if self.lines else ""

    @cached_property
    def executable(self) -> bool:
        return os.access(self.path, os.X_OK)

    @property
    def in_environment_d(self) -> bool:
        return self.path.parent.name == "environment.d"

    @property
    def shell_rules_apply(self) -> bool:
        return self.is_text and not self.name.endswith(NOT_SCRIPTS)

    @property
    def is_script(self) -> bool:
        return self.shell_rules_apply and self.first.startswith("#!")

    @property
    def is_python(self) -> bool:
        return self.is_script and "python" in self.first

    @property
    def is_shell_script(self) -> bool:
        return self.is_script and not self.is_python

    @property
    def is_bash(self) -> bool:
        return self.is_shell_script and "#!/bin/bash" in self.first

    @property
    def shell_dialect(self) -> str | None:
        """How shellcheck should read it, if it is shell at all."""
        if self.is_shell_script and SHELL_SHEBANG.search(self.first):
            return "bash" if "bash" in self.first else "sh"
        if self.in_environment_d and self.shell_rules_apply and not self.first.startswith("#!"):
            return "bash"
        return None

    def at(self, line: int, message: str) -> Problem:
        return Problem(self.path, line, message)

    def each_line(self, matches: Callable[[str], bool], message: Callable[[str], str]
                  ) -> Iterable[Problem]:
        return (self.at(n, message(line)) for n, line in enumerate(self.lines, 1)
                if matches(line))

    def first_line(self, matches: Callable[[str], bool], message: str) -> Iterable[Problem]:
        return list(self.each_line(matches, lambda _line: message))[:1]


@dataclass
class ElementView:
    name: str
    path: Path
    known: Callable[[], set[str]]     # element names (and provides) on the search path
    # DIB_* variable → elements on the search path that set it in
    # environment.d and document it (dib.elements.variables.setters)
    variable_owners: Callable[[], dict[str, list[str]]] = dict


# --------------------------------------------------------------------------- file rules

def _mddocs(f: FileView) -> Iterable[Problem]:
    if f.name.endswith(".md"):
        yield f.at(0, "documentation must be .rst, not .md")


def _yaml(f: FileView) -> Iterable[Problem]:
    if not f.name.endswith((".yaml", ".yml")):
        return
    import yaml
    try:
        yaml.safe_load(read_text(f.path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        yield f.at(mark.line + 1 if mark else 0, f"invalid YAML: {problem}")


def _pkgmap(f: FileView) -> Iterable[Problem]:
    if f.name != "pkg-map" or f.executable:
        return
    try:
        data = json.loads(read_text(f.path))
    except json.JSONDecodeError as exc:
        yield f.at(exc.lineno, f"invalid JSON: {exc.msg}")
        return
    try:
        check_pkg_map(data, element=f.element, path=f.path)
    except ElementError as exc:
        yield f.at(0, exc.message.split(f"{f.path}: ", 1)[-1])


def _whitespace_checked(f: FileView) -> bool:
    return f.is_text and (f.name.endswith(".rst") or f.executable)


def _tabindent(f: FileView) -> Iterable[Problem]:
    if _whitespace_checked(f):
        yield from f.first_line(TAB_INDENT.match, "tab character in indentation")


def _newline(f: FileView) -> Iterable[Problem]:
    if not f.raw or f.raw.endswith(b"\n"):
        return
    if _whitespace_checked(f):
        yield f.at(len(f.lines), "no newline at end of file")
    elif f.name.startswith("source-repository-") and f.shell_rules_apply:
        yield f.at(len(f.lines), "source-repository file must end with a newline (the "
                                 "last line is otherwise not read)")


def _executable(f: FileView) -> Iterable[Problem]:
    if f.is_script and not f.executable:
        yield f.at(1, "starts with '#!' but is not executable: chmod +x")


def _python(f: FileView) -> Iterable[Problem]:
    if not f.is_python:
        return
    try:
        compile(f.raw or b"", str(f.path), "exec")
    except SyntaxError as exc:
        yield f.at(exc.lineno or 0, f"does not compile: {exc.msg}")
    except ValueError as exc:
        yield f.at(0, f"does not compile: {exc}")


def _indent(f: FileView) -> Iterable[Problem]:
    if f.is_shell_script:
        yield from f.first_line(BAD_INDENT.match, "indent with multiples of 4 spaces")


def _shebang(f: FileView) -> Iterable[Problem]:
    if f.is_shell_script and "bash" in f.first and f.first != "#!/bin/bash":
        yield f.at(1, f"use exactly '#!/bin/bash', not '{f.first}'")


def _bash_must_have(pattern: Callable[[str], object], message: str
                    ) -> Callable[[FileView], Iterable[Problem]]:
    def check(f: FileView) -> Iterable[Problem]:
        if f.is_bash and not any(pattern(line) for line in f.lines):
            yield f.at(1, message)
    return check


def _envsetx(f: FileView) -> Iterable[Problem]:
    if f.in_environment_d and f.shell_rules_apply:
        yield from f.each_line(lambda line: "set -x" in line,
                               lambda _line: "environment files must not 'set -x' "
                                             "(dib-run-parts traces them already)")


def _envexec(f: FileView) -> Iterable[Problem]:
    if f.in_environment_d and f.shell_rules_apply and f.executable:
        yield f.at(0, "environment files are sourced, not run: chmod -x")


def _exportsubst(f: FileView) -> Iterable[Problem]:
    if f.shell_rules_apply:
        yield from f.each_line(EXPORT_SUBST.search,
                               lambda _line: "split 'export X=$(cmd)' into 'X=$(cmd)' and "
                                             "'export X': the export hides a failure of cmd")


def _safe_sudo(f: FileView) -> Iterable[Problem]:
    if not (f.shell_rules_apply and SAFE_SUDO_DIRS.search(f.path.parent.name)):
        return
    yield from f.each_line(
        lambda line: "sudo " in line.strip() and not SAFE_SUDO_OK.search(line.strip()),
        lambda line: f"sudo in {f.path.parent.name} runs on the host; make it act on "
                     "$TARGET_ROOT (or mark the line '# dib-lint: safe_sudo'): "
                     + line.strip())


def _which(f: FileView) -> Iterable[Problem]:
    if f.shell_rules_apply:
        yield from f.each_line(
            lambda line: "which " in line.strip() and not line.strip().startswith("#")
            and "dib-lint: which" not in line.strip(),
            lambda line: "use 'command -v' instead of 'which': " + line.strip())


def _sorted_deps(f: FileView) -> Iterable[Problem]:
    if f.name != "element-deps" or not f.shell_rules_apply:
        return
    names = [line for line in f.lines if line and not line.startswith("#")]
    if names != sorted(names):
        first_bad = next(i for i, (a, b) in enumerate(zip(names, sorted(names))) if a != b)
        yield f.at(f.lines.index(names[first_bad]) + 1,
                   "element-deps is not sorted alphabetically; sorted it reads: "
                   + ", ".join(sorted(names)))


# --------------------------------------------------------------------------- element rules

def _readme(e: ElementView) -> Iterable[Problem]:
    if not (e.path / "README.rst").is_file():
        yield Problem(e.path, 0, "element has no README.rst")


def _undocumented_variable(e: ElementView) -> Iterable[Problem]:
    if not (e.path / "README.rst").is_file():
        return    # the readme rule reports it; one problem per variable would be noise
    statuses = variable_statuses(e.name, e.path, engine=engine_variables(),
                                 owners=e.variable_owners())
    for status in statuses:
        if not status.undocumented:
            continue
        (path, line), *others = status.places
        also = f" (also read in {len(others)} other file(s))" if others else ""
        yield Problem(path, line,
                      f"element '{e.name}' reads {status.name} but its README.rst does not "
                      f"mention it{also}: document it there (what it does, its values "
                      "and default)")


def _hookname(e: ElementView) -> Iterable[Problem]:
    for phase in HOOK_PHASE_NAMES:
        directory = e.path / f"{phase}.d"
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            if entry.name in SKIP_DIRS or entry.name.startswith(".") or entry.is_dir():
                continue
            if entry.name.startswith(PLAIN_PACKAGE_LIST):
                continue
            if not HOOK_NAME.match(entry.name):
                yield Problem(entry, 0, "dib-run-parts silently skips this file: its name "
                              "does not match [0-9A-Za-z_-]+ (rename it, e.g. "
                              f"'{re.sub(r'[^0-9A-Za-z_-]', '-', entry.stem)}')")
            elif not os.access(entry, os.X_OK):
                yield Problem(entry, 0, "dib-run-parts silently skips this file: it is not "
                              "executable (chmod +x)")


def _missing_dep(e: ElementView) -> Iterable[Problem]:
    path = e.path / "element-deps"
    if not path.is_file():
        return
    for number, line in enumerate(read_text(path).splitlines(), 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        known = e.known()
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            yield Problem(path, number,
                          f"element '{name}' is not on the element search path{hint}")


def _package_installs(e: ElementView) -> Iterable[Problem]:
    import yaml
    for fname in ("package-installs.yaml", "package-installs.json"):
        path = e.path / fname
        if not path.is_file():
            continue
        try:
            data = (json.loads(read_text(path)) if fname.endswith(".json")
                    else yaml.safe_load(read_text(path)))
        except (yaml.YAMLError, json.JSONDecodeError):
            if fname.endswith(".json"):
                yield Problem(path, 0, "invalid JSON")
            continue   # YAML syntax is reported by the yaml rule
        try:
            validate_package_installs(data, element=e.name, path=str(path))
        except DibError as exc:
            message = exc.message.split(f"{path}: ", 1)[-1]
            if exc.hint:
                message += f" ({exc.hint})"
            yield Problem(path, _line_of_package(path, message), message)


def _line_of_package(path: Path, message: str) -> int:
    """Best effort: the line of the package a schema message names."""
    match = re.search(r"package '([^']+)'", message)
    if not match:
        return 0
    wanted = match.group(1)
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if line.split(":", 1)[0].strip().strip("'\"") == wanted:
            return number
    return 0


# --------------------------------------------------------------------------- reading

def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def read_text(path: Path) -> str:
    data = read_bytes(path)
    return data.decode("utf-8", "replace") if data is not None else ""


# --------------------------------------------------------------------------- the rules

def _rules() -> dict[str, Rule]:
    rules = [
        Rule("readme", "every element has a README.rst", _readme, ELEMENT),
        Rule("executable", "a file starting with '#!' is executable", _executable),
        Rule("shebang", "bash scripts start with exactly '#!/bin/bash'", _shebang),
        Rule("sete", "bash scripts 'set -e'",
             _bash_must_have(SET_E.match, "script does not 'set -e'")),
        Rule("setu", "bash scripts 'set -u'",
             _bash_must_have(SET_U.match, "script does not 'set -u'")),
        Rule("setpipefail", "bash scripts 'set -o pipefail'",
             _bash_must_have(SET_PIPEFAIL.match, "script does not 'set -o pipefail'")),
        Rule("dibdebugtrace", "bash scripts follow DIB_DEBUG_TRACE (turn on xtrace when "
             "it is > 0)",
             _bash_must_have(lambda line: "DIB_DEBUG_TRACE" in line,
                             "script ignores DIB_DEBUG_TRACE; add: if [ "
                             "\"${DIB_DEBUG_TRACE:-0}\" -gt 0 ]; then set -x; fi")),
        Rule("indent", "shell scripts indent with multiples of 4 spaces", _indent),
        Rule("envexec", "environment.d files are not executable (they are sourced)",
             _envexec),
        Rule("envsetx", "environment.d files do not 'set -x'", _envsetx),
        Rule("exportsubst", "no 'export X=$(cmd)': the export hides cmd's exit status",
             _exportsubst),
        Rule("safe_sudo", "sudo in a host-side phase works inside the target", _safe_sudo),
        Rule("which", "no 'which' (not a shell builtin, missing from small images)", _which),
        Rule("tabindent", "no tab characters in indentation", _tabindent),
        Rule("newline", "files end with a newline", _newline),
        Rule("sorted-deps", "element-deps is sorted alphabetically", _sorted_deps),
        Rule("mddocs", "documentation is reStructuredText, not *.md", _mddocs),
        Rule("yaml", "*.yaml files parse", _yaml),
        Rule("pkgmap", "pkg-map is valid JSON in the pkg-map layout", _pkgmap),
        # Ours.
        Rule("hookname", "every file in a <phase>.d directory would be run by "
             "dib-run-parts", _hookname, ELEMENT),
        Rule("missing-dep", "element-deps names elements that exist on the search path",
             _missing_dep, ELEMENT),
        Rule("package-installs", "package-installs.yaml/json matches its schema",
             _package_installs, ELEMENT),
        Rule("undocumented-variable", "every DIB_* variable an element reads is named in "
             "its README.rst, unless the build or another element that documents it "
             "sets it", _undocumented_variable, ELEMENT),
        Rule("shellcheck", "shellcheck finds no warnings or errors", shellcheck.check,
             SHELL_FILES),
        Rule("python", "Python hooks compile", _python),
    ]
    return {rule.id: rule for rule in rules}


RULES: dict[str, Rule] = _rules()
