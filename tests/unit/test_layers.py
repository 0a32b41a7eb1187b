"""The layer rule of docs/architecture.md, checked: a module imports only from
its own layer and the layers listed above it in the doc's table."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"


def layer_table(doc: Path = DOC) -> list[tuple[str, list[str]]]:
    """(layer, its paths) for each row of the doc's first table, top first."""
    rows = []
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[1].startswith("`dib"):
            if rows:
                break       # the table has ended
            continue
        rows.append((cells[0], re.findall(r"`(dib[^`]*)`", cells[1])))
    return rows


def layer_of(path: str, table: list[tuple[str, list[str]]]) -> int | None:
    """The row of a file (``dib/x/y.py``): the longest package path holding it."""
    best, length = None, -1
    for rank, (_name, paths) in enumerate(table):
        for prefix in paths:
            holds = path.startswith(prefix) if prefix.endswith("/") else path == prefix
            if holds and len(prefix) > length:
                best, length = rank, len(prefix)
    return best


def module_file(module: str, root: Path) -> str | None:
    """``dib.a.b`` → ``dib/a/b.py`` or ``dib/a/b/__init__.py`` under ``root``."""
    base = Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (root / candidate).is_file():
            return candidate.as_posix()
    return None


def imported_files(source: Path, root: Path) -> list[tuple[int, str, str]]:
    """(line, module name, file) of every dib module ``source`` imports, at any
    depth (function bodies and TYPE_CHECKING blocks too)."""
    package = ".".join(source.relative_to(root).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(filter(None, [*parent, base]))
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "dib":
                continue
            # "from dib.x import y": y is a module or a name in dib.x.
            while name != "dib" and module_file(name, root) is None:
                name = name.rsplit(".", 1)[0]
            if name != "dib":
                out.append((node.lineno, name, module_file(name, root)))
    return out


def violations(root: Path, table: list[tuple[str, list[str]]]) -> list[str]:
    problems = []
    for source in sorted((root / "dib").rglob("*.py")):
        relative = source.relative_to(root).as_posix()
        if relative == "dib/__init__.py":
            continue
        mine = layer_of(relative, table)
        if mine is None:
            problems.append(f"{relative} is in no layer of docs/architecture.md")
            continue
        for line, name, target in imported_files(source, root):
            theirs = layer_of(target, table)
            if theirs is not None and theirs > mine:
                problems.append(f"{relative}:{line} imports {name} ({table[theirs][0]}), "
                                f"a layer below its own ({table[mine][0]})")
    return sorted(set(problems))


def test_no_module_imports_a_layer_below_its_own():
    table = layer_table()
    assert [name for name, _paths in table][:3] == ["errors, runner, command", "config",
                                                    "elements"]
    assert violations(REPO, table) == []


def test_an_upward_import_is_caught(tmp_path):
    # The same check on a small tree with one import the wrong way.
    for name, text in {"dib/__init__.py": "",
                       "dib/errors.py": "",
                       "dib/config/__init__.py": "from dib import errors\n",
                       "dib/config/settings.py": "def f():\n    from ..cli import main\n",
                       "dib/cli/__init__.py": "",
                       "dib/cli/main.py": "from dib.config import settings\n",
                       "dib/stray.py": ""}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    table = [("errors", ["dib/errors.py"]), ("config", ["dib/config/"]),
             ("cli", ["dib/cli/"])]
    assert violations(tmp_path, table) == [
        "dib/config/settings.py:2 imports dib.cli.main (cli), a layer below its own (config)",
        "dib/stray.py is in no layer of docs/architecture.md"]
