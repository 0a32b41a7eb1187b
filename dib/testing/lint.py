"""``dib lint``: static checks for elements.

Every check DIB's ``dib-lint`` makes, under the same rule ids where it has one,
plus checks that catch mistakes a build would only show much later (or never):
hook files dib-run-parts would silently skip, ``element-deps`` that name no
element, an invalid ``package-installs`` file, shellcheck warnings and Python
hooks that do not compile.

Suppress rules for one file with a line ``# dib-lint: disable=rule1 rule2``
(or for a whole project with ``[dib-lint] ignore = rule1 rule2`` in
``tox.ini`` or ``setup.cfg``, as DIB reads it). A ``sudo`` line in a host
phase is accepted when it carries ``# dib-lint: safe_sudo``, a ``which`` line
when it carries ``dib-lint: which``.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from dib.elements.model import HOOK_NAME
from dib.elements.phases import HOOK_PHASE_NAMES
from dib import runner
from dib.errors import CommandError, ConfigError

# Rule id → what it checks. Ids from DIB's dib-lint are kept as they are.
RULES: dict[str, str] = {
    "readme": "every element has a README.rst",
    "executable": "a file starting with '#!' is executable",
    "shebang": "bash scripts start with exactly '#!/bin/bash'",
    "sete": "bash scripts 'set -e'",
    "setu": "bash scripts 'set -u'",
    "setpipefail": "bash scripts 'set -o pipefail'",
    "dibdebugtrace": "bash scripts follow DIB_DEBUG_TRACE (turn on xtrace when it is > 0)",
    "indent": "shell scripts indent with multiples of 4 spaces",
    "envexec": "environment.d files are not executable (they are sourced)",
    "envsetx": "environment.d files do not 'set -x'",
    "exportsubst": "no 'export X=$(cmd)': the export hides cmd's exit status",
    "safe_sudo": "sudo in a host-side phase works inside the target",
    "which": "no 'which' (not a shell builtin, missing from small images)",
    "tabindent": "no tab characters in indentation",
    "newline": "files end with a newline",
    "sorted-deps": "element-deps is sorted alphabetically",
    "mddocs": "documentation is reStructuredText, not *.md",
    "yaml": "*.yaml files parse",
    "pkgmap": "pkg-map is valid JSON in the pkg-map layout",
    # Ours.
    "hookname": "every file in a <phase>.d directory would be run by dib-run-parts",
    "missing-dep": "element-deps names elements that exist on the search path",
    "package-installs": "package-installs.yaml/json matches its schema",
    "shellcheck": "shellcheck finds no warnings or errors",
    "python": "Python hooks compile",
}

# Phases whose hooks run on the host, where a bare sudo touches the host. DIB's
# pattern is unanchored, so post-root.d and pre-finalise.d match too.
SAFE_SUDO_DIRS = re.compile(r"(root\.d|extra-data\.d|block-device\.d|finalise\.d|cleanup\.d)$")
SAFE_SUDO_OK = re.compile(r"dib-lint: safe_sudo|^#|install-packages|TARGET_ROOT|"
                          r"IMAGE_BLOCK_DEVICE|TMP_MOUNT_PATH|TMP_IMAGE_PATH")
DISABLE = re.compile(r"^#\s*dib-lint:\s*disable=(.*)$")
BAD_INDENT = re.compile(r"^(?: {4})* {1,3}[^ ]")
TAB_INDENT = re.compile(r"^ *\t")
EXPORT_SUBST = re.compile(r"export .*\$\(")
SET_E = re.compile(r"^set -[^ ]*e")
SET_U = re.compile(r"^set -[^ ]*u")
SET_PIPEFAIL = re.compile(r"^set -o pipefail")
ELEMENT_MARKERS = ("README.rst", "element-deps", "element-provides", "package-installs.yaml",
                   "package-installs.json", "pkg-map", "svc-map")
SKIP_DIRS = {".git", "__pycache__", ".tox", ".venv", ".pytest_cache", ".mypy_cache"}
SHELLCHECK_LEVELS = ("error", "warning")


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int
    rule: str
    message: str
    element: str = field(default="", compare=False)

    def text(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.message}"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elements: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


class LintUsageError(ConfigError):
    """Bad paths or arguments for dib lint (exit status 2)."""


# --------------------------------------------------------------------------- finding elements

def is_element_dir(path: Path) -> bool:
    if any((path / marker).is_file() for marker in ELEMENT_MARKERS):
        return True
    return any((path / f"{d}.d").is_dir() for d in (*HOOK_PHASE_NAMES, "environment"))


def collect_elements(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Each path is an element directory or a directory of elements."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise LintUsageError(f"dib lint: '{raw}' does not exist",
                                 hint="give element directories or directories of elements")
        if not path.is_dir():
            raise LintUsageError(f"dib lint: '{raw}' is not a directory",
                                 hint="give element directories or directories of elements")
        if is_element_dir(path):
            candidates = [path]
        else:
            candidates = [p for p in sorted(path.iterdir())
                          if p.is_dir() and not p.name.startswith((".", "_"))]
        for candidate in candidates:
            if all(candidate.resolve() != seen.resolve() for seen in out):
                out.append(candidate)
    return out


def default_paths(environ: Mapping[str, str] | None = None, cwd: Path | None = None
                  ) -> list[Path]:
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    if (cwd / "elements").is_dir():
        return [cwd / "elements"]
    paths = [Path(p) for p in environ.get("ELEMENTS_PATH", "").split(":") if p]
    if not paths:
        raise LintUsageError("dib lint: nothing to lint: no ./elements directory and "
                             "ELEMENTS_PATH is empty",
                             hint="pass element directories: dib lint PATH...")
    return paths


def project_ignores(cwd: Path | None = None) -> set[str]:
    """Rules ignored for the whole project: ``[dib-lint] ignore`` in tox.ini/setup.cfg."""
    cwd = cwd or Path.cwd()
    ignored: set[str] = set()
    for name in ("tox.ini", "setup.cfg"):
        path = cwd / name
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except configparser.Error:
            continue
        if parser.has_option("dib-lint", "ignore"):
            ignored.update(parser.get("dib-lint", "ignore").split())
    return ignored


# --------------------------------------------------------------------------- the linter

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

    # -- bookkeeping --------------------------------------------------------
    def add(self, element: str, path: Path, line: int, rule: str, message: str) -> None:
        if rule in self.ignore or rule in self.disabled(path):
            return
        self.report.findings.append(Finding(str(path), line, rule, message, element))

    def note(self, text: str) -> None:
        if text not in self.report.notes:
            self.report.notes.append(text)

    def disabled(self, path: Path) -> set[str]:
        if path not in self._disabled:
            rules: set[str] = set()
            if path.is_file():
                for line in _read_text(path).splitlines():
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
            self.run_shellcheck()
        self.report.findings.sort(key=lambda f: (f.file, f.line, f.rule, f.message))
        return self.report

    def lint_element(self, element_dir: Path) -> None:
        name = element_dir.name
        if not (element_dir / "README.rst").is_file():
            self.add(name, element_dir, 0, "readme", "element has no README.rst")
        for path in _walk(element_dir):
            self.lint_file(name, element_dir, path)
        self.lint_hook_names(name, element_dir)
        self.lint_deps(name, element_dir)
        self.lint_package_installs(name, element_dir)

    def lint_file(self, element: str, element_dir: Path, path: Path) -> None:
        fname = path.name
        if fname.endswith(".md"):
            self.add(element, path, 0, "mddocs", "documentation must be .rst, not .md")
        if fname.endswith((".yaml", ".yml")):
            self.check_yaml(element, path)
        if fname == "pkg-map" and not os.access(path, os.X_OK):
            self.check_pkg_map(element, path)
        raw = _read_bytes(path)
        if raw is None or b"\0" in raw[:8192]:
            return   # unreadable or binary
        text = raw.decode("utf-8", "replace")
        lines = text.splitlines()
        first = lines[0] if lines else ""
        executable = os.access(path, os.X_OK)
        is_env = path.parent.name == "environment.d"
        if fname.endswith((".rst",)) or executable:
            self.check_whitespace(element, path, raw, lines)
        if fname.endswith((".rst", ".yaml", ".yml", ".py")):
            return
        if fname.startswith("source-repository-") and raw and not raw.endswith(b"\n") \
                and not executable:
            self.add(element, path, len(lines), "newline",
                     "source-repository file must end with a newline (the last line "
                     "is otherwise not read)")
        if first.startswith("#!"):
            self.check_script(element, path, first, lines, executable)
        if is_env:
            self.check_environment_file(element, path, lines, executable)
        for number, line in enumerate(lines, 1):
            if EXPORT_SUBST.search(line):
                self.add(element, path, number, "exportsubst",
                         "split 'export X=$(cmd)' into 'X=$(cmd)' and 'export X': the "
                         "export hides a failure of cmd")
        if SAFE_SUDO_DIRS.search(path.parent.name):
            for number, line in enumerate(lines, 1):
                stripped = line.strip()
                if "sudo " in stripped and not SAFE_SUDO_OK.search(stripped):
                    self.add(element, path, number, "safe_sudo",
                             f"sudo in {path.parent.name} runs on the host; make it act on "
                             "$TARGET_ROOT (or mark the line '# dib-lint: safe_sudo'): "
                             + stripped)
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if "which " in stripped and not stripped.startswith("#") \
                    and "dib-lint: which" not in stripped:
                self.add(element, path, number, "which",
                         "use 'command -v' instead of 'which': " + stripped)
        if fname == "element-deps":
            self.check_deps_sorted(element, path, lines)

    # -- individual checks ---------------------------------------------------
    def check_whitespace(self, element: str, path: Path, raw: bytes, lines: list[str]
                         ) -> None:
        for number, line in enumerate(lines, 1):
            if TAB_INDENT.match(line):
                self.add(element, path, number, "tabindent", "tab character in indentation")
                break
        if raw and not raw.endswith(b"\n"):
            self.add(element, path, len(lines), "newline", "no newline at end of file")

    def check_script(self, element: str, path: Path, first: str, lines: list[str],
                     executable: bool) -> None:
        if not executable:
            self.add(element, path, 1, "executable",
                     "starts with '#!' but is not executable: chmod +x")
        if "python" in first:
            self.check_python(element, path)
            return
        for number, line in enumerate(lines, 1):
            if BAD_INDENT.match(line):
                self.add(element, path, number, "indent",
                         "indent with multiples of 4 spaces")
                break
        if "bash" in first and first != "#!/bin/bash":
            self.add(element, path, 1, "shebang",
                     f"use exactly '#!/bin/bash', not '{first}'")
        if "#!/bin/bash" in first:
            if not any(SET_E.match(l) for l in lines):
                self.add(element, path, 1, "sete", "script does not 'set -e'")
            if not any(SET_U.match(l) for l in lines):
                self.add(element, path, 1, "setu", "script does not 'set -u'")
            if not any(SET_PIPEFAIL.match(l) for l in lines):
                self.add(element, path, 1, "setpipefail", "script does not 'set -o pipefail'")
            if not any("DIB_DEBUG_TRACE" in l for l in lines):
                self.add(element, path, 1, "dibdebugtrace",
                         "script ignores DIB_DEBUG_TRACE; add: if [ "
                         "\"${DIB_DEBUG_TRACE:-0}\" -gt 0 ]; then set -x; fi")
        if re.search(r"\b(bash|sh|dash)\b", first):
            self._shell_files.append((path, "bash" if "bash" in first else "sh", element))

    def check_environment_file(self, element: str, path: Path, lines: list[str],
                               executable: bool) -> None:
        for number, line in enumerate(lines, 1):
            if "set -x" in line:
                self.add(element, path, number, "envsetx",
                         "environment files must not 'set -x' (dib-run-parts traces "
                         "them already)")
        if executable:
            self.add(element, path, 0, "envexec",
                     "environment files are sourced, not run: chmod -x")
        if not lines or not lines[0].startswith("#!"):
            self._shell_files.append((path, "bash", element))

    def check_python(self, element: str, path: Path) -> None:
        try:
            compile(_read_bytes(path) or b"", str(path), "exec")
        except SyntaxError as exc:
            self.add(element, path, exc.lineno or 0, "python",
                     f"does not compile: {exc.msg}")
        except ValueError as exc:
            self.add(element, path, 0, "python", f"does not compile: {exc}")

    def check_yaml(self, element: str, path: Path) -> None:
        import yaml
        try:
            yaml.safe_load(_read_text(path))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.add(element, path, mark.line + 1 if mark else 0, "yaml",
                     f"invalid YAML: {problem}")

    def check_pkg_map(self, element: str, path: Path) -> None:
        try:
            data = json.loads(_read_text(path))
        except json.JSONDecodeError as exc:
            self.add(element, path, exc.lineno, "pkgmap", f"invalid JSON: {exc.msg}")
            return
        from dib.elements.formats import check_pkg_map
        from dib.errors import ElementError
        try:
            check_pkg_map(data, element=element, path=path)
        except ElementError as exc:
            self.add(element, path, 0, "pkgmap", exc.message.split(f"{path}: ", 1)[-1])

    def check_deps_sorted(self, element: str, path: Path, lines: list[str]) -> None:
        names = [l for l in lines if l and not l.startswith("#")]
        if names != sorted(names):
            first_bad = next(i for i, (a, b) in enumerate(zip(names, sorted(names))) if a != b)
            self.add(element, path, lines.index(names[first_bad]) + 1, "sorted-deps",
                     "element-deps is not sorted alphabetically; sorted it reads: "
                     + ", ".join(sorted(names)))

    def lint_hook_names(self, element: str, element_dir: Path) -> None:
        for phase in HOOK_PHASE_NAMES:
            directory = element_dir / f"{phase}.d"
            if not directory.is_dir():
                continue
            for entry in sorted(directory.iterdir()):
                if entry.name in SKIP_DIRS or entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    continue
                if not HOOK_NAME.match(entry.name):
                    self.add(element, entry, 0, "hookname",
                             f"dib-run-parts silently skips this file: its name does not "
                             f"match [0-9A-Za-z_-]+ (rename it, e.g. "
                             f"'{re.sub(r'[^0-9A-Za-z_-]', '-', entry.stem)}')")
                elif not os.access(entry, os.X_OK):
                    self.add(element, entry, 0, "hookname",
                             "dib-run-parts silently skips this file: it is not "
                             "executable (chmod +x)")

    def known_elements(self) -> set[str]:
        if self._known is None:
            from dib.elements.discovery import entry_point_dirs, find_elements
            dirs: list[Path] = []
            for element_dir in self.report.elements:
                dirs.append(element_dir.parent)
            if self.search_paths is not None:
                dirs += list(self.search_paths)
            else:
                dirs += [Path(p) for p in self.environ.get("ELEMENTS_PATH", "").split(":")
                         if p]
                try:
                    dirs += entry_point_dirs()
                except Exception as exc:  # a broken plugin must not stop the lint
                    self.note(f"could not list installed element packages: {exc}")
            unique: list[Path] = []
            for d in dirs:
                if d.is_dir() and all(d.resolve() != u.resolve() for u in unique):
                    unique.append(d)
            index = find_elements(unique)
            known = set(index.elements)
            for el in index.elements.values():
                try:
                    known.update(el.provides)
                except OSError:
                    pass
            # An element being linted is known by its directory name too.
            known.update(p.name for p in self.report.elements)
            self._known = known
        return self._known

    def lint_deps(self, element: str, element_dir: Path) -> None:
        path = element_dir / "element-deps"
        if not path.is_file():
            return
        known = None
        for number, line in enumerate(_read_text(path).splitlines(), 1):
            name = line.strip()
            if not name or name.startswith("#"):
                continue
            if known is None:
                known = self.known_elements()
            if name not in known:
                import difflib
                close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                self.add(element, path, number, "missing-dep",
                         f"element '{name}' is not on the element search path{hint}")

    def lint_package_installs(self, element: str, element_dir: Path) -> None:
        for fname in ("package-installs.yaml", "package-installs.json"):
            path = element_dir / fname
            if not path.is_file():
                continue
            try:
                from dib.elements.package_installs import validate
            except ImportError:
                self.note("package-installs schema check skipped: "
                          "dib.elements.package_installs is not available")
                return
            import yaml
            try:
                data = (json.loads(_read_text(path)) if fname.endswith(".json")
                        else yaml.safe_load(_read_text(path)))
            except (yaml.YAMLError, json.JSONDecodeError):
                if fname.endswith(".json"):
                    self.add(element, path, 0, "package-installs", "invalid JSON")
                continue   # YAML syntax is reported by the yaml rule
            from dib.errors import DibError
            try:
                validate(data, element=element, path=str(path))
            except DibError as exc:
                message = exc.message.split(f"{path}: ", 1)[-1]
                if exc.hint:
                    message += f" ({exc.hint})"
                self.add(element, path, _line_of_key(path, message), "package-installs",
                         message)

    def run_shellcheck(self) -> None:
        if not self._shell_files:
            return
        tool = shutil.which("shellcheck")
        if tool is None:
            self.note("shellcheck is not installed; shell scripts were not checked by it "
                      "(apt-get install shellcheck)")
            return
        by_dialect: dict[str, list[tuple[Path, str]]] = {}
        for path, dialect, element in self._shell_files:
            if "shellcheck" in self.ignore or "shellcheck" in self.disabled(path):
                continue
            by_dialect.setdefault(dialect, []).append((path, element))
        for dialect, entries in sorted(by_dialect.items()):
            owners = {str(p): e for p, e in entries}
            argv = [tool, "-f", "json", "-S", "warning", "-s", dialect, "-x",
                    *[str(p) for p, _ in entries]]
            try:
                proc = runner.run(argv, check=False, timeout=300, what="shellcheck")
            except (OSError, CommandError) as exc:
                self.note(f"shellcheck could not run: {exc}")
                return
            try:
                results = json.loads(proc.stdout or "[]")
            except json.JSONDecodeError:
                self.note(f"shellcheck gave unreadable output: {proc.stderr.strip()[:200]}")
                continue
            for item in results:
                if item.get("level") not in SHELLCHECK_LEVELS:
                    continue
                file = item.get("file", "")
                self.add(owners.get(file, ""), Path(file), int(item.get("line", 0)),
                         "shellcheck", f"SC{item.get('code')} ({item.get('level')}): "
                         f"{item.get('message', '')}")


def _line_of_key(path: Path, message: str) -> int:
    """Best effort: the line of the package a schema message names."""
    match = re.search(r"package '([^']+)'", message)
    if not match:
        return 0
    wanted = match.group(1)
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if line.split(":", 1)[0].strip().strip("'\"") == wanted:
            return number
    return 0


def _walk(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath, name)
            if path.is_file():
                yield path


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _read_text(path: Path) -> str:
    data = _read_bytes(path)
    return data.decode("utf-8", "replace") if data is not None else ""


# --------------------------------------------------------------------------- entry points

def lint(paths: Sequence[str | os.PathLike] | None = None, *, shellcheck: bool = True,
         environ: Mapping[str, str] | None = None, ignore: Iterable[str] = (),
         search_paths: Sequence[Path] | None = None) -> LintReport:
    """Lint elements: each path is an element or a directory of elements
    (default: ./elements, else ELEMENTS_PATH)."""
    environ = os.environ if environ is None else environ
    chosen = list(paths) if paths else default_paths(environ)
    elements = collect_elements(chosen)
    linter = Linter(shellcheck=shellcheck, environ=environ,
                    ignore=set(ignore) | project_ignores(), search_paths=search_paths)
    return linter.run(elements)


def format_text(report: LintReport) -> str:
    return "".join(f.text() + "\n" for f in report.findings)


def format_json(report: LintReport) -> str:
    return json.dumps([f.as_dict() for f in report.findings], indent=2) + "\n"
