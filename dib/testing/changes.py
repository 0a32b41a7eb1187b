"""``--changed``: the elements a change touches, and everything that depends on them.

Git says which files changed since a base commit (committed, staged, unstaged
and untracked; both sides of a rename); each file is mapped to the element
directory that holds it, on the search path the command uses; the reverse
closure over element-deps and element-provides (``dib.elements.resolve``)
adds the elements that depend on a changed one. A deleted element is not
selected, but what depends on it is. Files outside every element are
counted and otherwise ignored.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from dib import runner
from dib.elements.discovery import ElementIndex
from dib.elements.resolve import Reached, dependants
from dib.errors import CommandError, DibError

SHOWN_FILES = 3


class ChangedError(DibError):
    """--changed cannot work out what changed (no repository, unknown REF)."""

    exit_code = 2


def _git(args: Sequence[str], cwd: Path, *, check: bool = True) -> runner.Result:
    if runner.which("git") is None:
        raise ChangedError("--changed needs git, which is not installed",
                           hint="install git, or name the elements to test")
    return runner.run(["git", *args], cwd=cwd, check=check, what="git",
                      stdin=subprocess.DEVNULL)


def repository_top(cwd: Path) -> Path:
    result = _git(["rev-parse", "--show-toplevel"], cwd, check=False)
    if not result.ok:
        raise ChangedError(f"--changed: {cwd} is not in a git repository",
                           hint="run the command inside the checkout that holds the elements")
    return Path(result.stdout.strip())


def _ref_exists(top: Path, ref: str) -> bool:
    return _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top,
                check=False).ok


def default_branch(top: Path) -> str:
    """origin's HEAD when the repository has that remote, else ``main`` or
    ``master`` (local, then origin's), whichever exists first."""
    result = _git(["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"], top, check=False)
    if result.ok and result.stdout.strip():
        return result.stdout.strip().removeprefix("refs/remotes/")
    for candidate in ("main", "master", "origin/main", "origin/master"):
        if _ref_exists(top, candidate):
            return candidate
    raise ChangedError("--changed: cannot find the default branch: origin/HEAD is not set "
                       "and there is no main or master branch",
                       hint="give the commit to compare with: --changed REF "
                            "(or run 'git remote set-head origin --auto')")


@dataclass(frozen=True)
class Base:
    commit: str
    description: str      # how it was chosen, for the user


def find_base(top: Path, ref: str | None) -> Base:
    """``ref`` as a commit; without one, the merge base of HEAD and the default branch."""
    if ref:
        if not _ref_exists(top, ref):
            raise ChangedError(f"--changed: '{ref}' is not a commit in {top}",
                               hint="give a branch, tag or commit; put element names or paths "
                                    "before --changed, or write --changed=REF")
        return Base(_git(["rev-parse", f"{ref}^{{commit}}"], top).stdout.strip(), ref)
    branch = default_branch(top)
    if not _ref_exists(top, "HEAD"):
        raise ChangedError(f"--changed: {top} has no commit yet",
                           hint="commit something, or give a REF")
    result = _git(["merge-base", "HEAD", branch], top, check=False)
    if not result.ok or not result.stdout.strip():
        raise ChangedError(f"--changed: HEAD and {branch} have no common commit",
                           hint="fetch more history (a shallow clone lacks it: "
                                "git fetch --unshallow), or give a REF")
    return Base(result.stdout.strip(), f"merge base of HEAD and {branch}")


def changed_paths(top: Path, base: str) -> list[str]:
    """Paths (relative to ``top``) that differ between ``base`` and the working
    tree, renames counted on both sides, plus untracked files not ignored."""
    try:
        diff = _git(["diff", "--name-status", "-z", "-M", "--no-ext-diff", base, "--"],
                    top).stdout
        untracked = _git(["ls-files", "-z", "--others", "--exclude-standard"], top).stdout
    except CommandError as exc:
        raise ChangedError(f"--changed: git cannot compare {base} with the working tree",
                           hint=exc.output_tail.strip() or None) from None
    fields = diff.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        count = 2 if status[0] in "RC" else 1      # renames and copies name two paths
        paths.extend(fields[i + 1:i + 1 + count])
        i += 1 + count
    paths.extend(p for p in untracked.split("\0") if p)
    return list(dict.fromkeys(paths))


@dataclass
class Selection:
    """The outcome of --changed, with the reasons shown to the user."""

    base: Base | None = None
    changed: dict[str, list[str]] = field(default_factory=dict)   # element → its files
    deleted: dict[str, list[str]] = field(default_factory=dict)   # gone element → files
    dependants: dict[str, Reached] = field(default_factory=dict)
    outside: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The elements to check: changed ones, then their dependants."""
        return [*self.changed, *self.dependants]

    @property
    def affected(self) -> list[str]:
        """Everything a dependency on which makes a test worth running again:
        the selected elements and the deleted ones."""
        return [*self.names, *self.deleted]

    def reason(self, name: str) -> str:
        if name in self.changed:
            return "changed: " + _some(self.changed[name])
        return self.dependants[name].describe()

    def describe(self, prog: str) -> list[str]:
        """A line saying what was compared, then one line per element and why."""
        since = f"since {self.base.commit[:12]} ({self.base.description})" if self.base else ""
        lines = [f"{prog}: changes {since}".rstrip()]
        width = max([len(n) for n in [*self.names, *self.deleted]] or [0])
        lines.extend(f"  {n:<{width}}  {self.reason(n)}" for n in self.names)
        lines.extend(f"  {n:<{width}}  deleted, not checked: {_some(files)}"
                     for n, files in self.deleted.items())
        if self.outside:
            lines.append(f"  {len(self.outside)} changed file(s) outside the elements, "
                         f"ignored: {_some(self.outside)}")
        return lines


def _some(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:SHOWN_FILES])
    return shown + (f" (+{len(paths) - SHOWN_FILES} more)" if len(paths) > SHOWN_FILES
                    else "")


def _owner(path: Path, dirs: dict[Path, str], roots: set[Path]) -> tuple[str, str] | None:
    """('element', name) for a file in an element's directory, ('deleted', name)
    for a file in a directory of elements where that element no longer is."""
    for parent in path.parents:
        if parent in dirs:
            return "element", dirs[parent]
    for parent in path.parents:
        if parent.parent in roots and not parent.name.startswith((".", "_")):
            return ("deleted", parent.name) if not parent.exists() else None
    return None


def select(paths: Sequence[str], top: Path, index: ElementIndex) -> Selection:
    """Map changed ``paths`` (relative to ``top``) to the elements of ``index``
    and add every element that depends on them."""
    dirs = {index[name].path.resolve(): name for name in index.names()}
    roots = {Path(p).resolve() for p in index.paths}
    selection = Selection()
    for relative in paths:
        owner = _owner(top / relative, dirs, roots)
        if owner is None:
            selection.outside.append(relative)
            continue
        kind, name = owner
        if kind == "deleted" and name in index:
            selection.outside.append(relative)   # a copy the search path did not use
            continue
        target = selection.changed if kind == "element" else selection.deleted
        target.setdefault(name, []).append(relative)
    selection.dependants = dependants([*selection.changed, *selection.deleted], index)
    return selection


def changed_elements(index: ElementIndex, ref: str | None, *, cwd: Path) -> Selection:
    """The elements of ``index`` changed since ``ref`` (default: the merge base
    with the default branch) in the repository holding ``cwd``, with their
    dependants."""
    top = repository_top(cwd)
    base = find_base(top, ref)
    selection = select(changed_paths(top, base.commit), top, index)
    selection.base = base
    return selection


def index_of(element_dirs: Sequence[Path], roots: Sequence[Path]) -> ElementIndex:
    """An index of exactly these element directories (the first of a name wins,
    as on a search path); ``roots`` are the directories of elements they came
    from, where a deleted element is recognised."""
    from dib.elements.model import Element
    index = ElementIndex(paths=[Path(r) for r in roots])
    for path in element_dirs:
        index.elements.setdefault(path.name, Element(path.name, Path(path)))
    return index
