"""Small element trees in temporary directories, for tests."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable, Mapping

HOOK_TEXT = "#!/bin/bash\nset -eu -o pipefail\n"


class ElementTree:
    """A directory of elements, made one call at a time.

    ``tree.add("foo", deps=["bar"], provides=["operating-system"],
    hooks={"install": ["10-a", "20-b"]}, files={"pkg-map": "{}"})``
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __str__(self) -> str:
        return str(self.root)

    def path(self, name: str) -> Path:
        return self.root / name

    def add(self, name: str, *, deps: Iterable[str] = (), provides: Iterable[str] = (),
            hooks: Mapping[str, Iterable[str] | Mapping[str, str]] | None = None,
            files: Mapping[str, str] | None = None,
            executable: Iterable[str] = ()) -> Path:
        """Create (or add to) an element. ``hooks`` maps a phase to hook
        names (made executable) or to {name: text}; ``files`` maps paths
        inside the element to their text (not executable unless listed in
        ``executable``)."""
        element = self.root / name
        element.mkdir(parents=True, exist_ok=True)
        deps, provides = list(deps), list(provides)
        if deps:
            (element / "element-deps").write_text("\n".join(deps) + "\n")
        if provides:
            (element / "element-provides").write_text("\n".join(provides) + "\n")
        for phase, names in (hooks or {}).items():
            directory = element / f"{phase}.d"
            directory.mkdir(exist_ok=True)
            items = names.items() if isinstance(names, Mapping) else \
                ((n, HOOK_TEXT) for n in names)
            for hook, text in items:
                write(directory / hook, text, executable=True)
        for relative, text in (files or {}).items():
            write(element / relative, text, executable=relative in set(executable))
        return element

    def os_element(self, name: str = "test-os", **kwargs) -> Path:
        """An element that provides operating-system."""
        provides = ["operating-system", *kwargs.pop("provides", [])]
        return self.add(name, provides=provides, **kwargs)


def write(path: Path, text: str, *, executable: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mode = path.stat().st_mode
    if executable:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    else:
        path.chmod(mode & ~(stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    return path


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def subprocess_env(**extra: str) -> dict[str, str]:
    """An environment for running dib's commands from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(repo_root())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(extra)
    return env
