"""The shellcheck rule: every shell script of the run, one shellcheck call
per dialect, warnings and errors only."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

from dib import runner
from dib.errors import CommandError
from dib.testing.lint.report import Problem

LEVELS = ("error", "warning")


def check(files: Sequence[tuple[Path, str, str]], note: Callable[[str], None]
          ) -> Iterable[Problem]:
    """``files`` are (path, dialect, element); ``note`` takes what the user
    should know about the run itself (shellcheck missing or failing)."""
    if not files:
        return
    tool = shutil.which("shellcheck")
    if tool is None:
        note("shellcheck is not installed; shell scripts were not checked by it "
             "(apt-get install shellcheck)")
        return
    by_dialect: dict[str, list[tuple[Path, str]]] = {}
    for path, dialect, element in files:
        by_dialect.setdefault(dialect, []).append((path, element))
    for dialect, entries in sorted(by_dialect.items()):
        owners = {str(p): e for p, e in entries}
        argv = [tool, "-f", "json", "-S", "warning", "-s", dialect, "-x",
                *[str(p) for p, _ in entries]]
        try:
            ran = runner.run(argv, check=False, timeout=300, what="shellcheck")
        except (OSError, CommandError) as exc:
            note(f"shellcheck could not run: {exc}")
            return
        try:
            results = json.loads(ran.stdout or "[]")
        except json.JSONDecodeError:
            note(f"shellcheck gave unreadable output: {ran.stderr.strip()[:200]}")
            continue
        for item in results:
            if item.get("level") not in LEVELS:
                continue
            file = item.get("file", "")
            yield Problem(Path(file), int(item.get("line", 0)),
                          f"SC{item.get('code')} ({item.get('level')}): "
                          f"{item.get('message', '')}", owners.get(file, ""))
