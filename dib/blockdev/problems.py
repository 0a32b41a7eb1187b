"""Mistakes found in a block-device config, gathered so that one run shows them all.

Reading the YAML and checking the graph never stop at the first mistake:
each is recorded with the node and key it is about and where that node
stands in the document, and ``raise_if_any`` turns them all into a single
``ConfigProblems`` error, in document order, whole-config problems last.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dib.blockdev import sizes
from dib.errors import BlockDeviceError

#: position of a problem about the config as a whole: after every node's
WHOLE = 1 << 62


@dataclass(frozen=True)
class Problem:
    text: str
    hint: str | None = None
    where: str | None = None     # "node 'root' (partition)", or None for the whole config
    key: str | None = None
    position: int = WHOLE

    def line(self) -> str:
        parts = [self.where] if self.where else []
        if self.key:
            parts.append(f"key '{self.key}'")
        return ": ".join(parts + [self.text])


class ConfigProblems(BlockDeviceError):
    """Every problem of one config, each on its own line with its hint."""

    def __init__(self, origin: str, problems: list[Problem]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        lines = [f"{origin}: {count}"]
        for problem in problems:
            lines.append(f"  {problem.line()}")
            if problem.hint:
                lines.append(f"    hint: {problem.hint}")
        super().__init__("\n".join(lines))


@dataclass
class NodeProblems:
    """Records problems about one node."""

    found: "Problems"
    node: str
    plugin: str
    position: int

    def __call__(self, text: str, hint: str | None = None, *, key: str | None = None) -> None:
        self.found.add(Problem(text, hint, f"node '{self.node}' ({self.plugin})", key,
                               self.position), (self.node, self.plugin))

    def size(self, key: str, value: Any, *, available: int | None = None) -> int | None:
        """``value`` in bytes, or None after recording why it is not a size."""
        try:
            return sizes.parse_size(value, available=available, what=key)
        except BlockDeviceError as exc:
            self(exc.message, exc.hint, key=key)
            return None


@dataclass
class Problems:
    found: list[Problem] = field(default_factory=list)
    #: name → plugin of each node a problem was found in (or that could not be read)
    broken: dict[str, str] = field(default_factory=dict)

    def add(self, problem: Problem, node: tuple[str, str] | None = None) -> None:
        self.found.append(problem)
        if node is not None:
            self.broken.setdefault(*node)

    def about(self, node: str, plugin: str, position: int) -> NodeProblems:
        return NodeProblems(self, node, plugin, position)

    def whole(self, text: str, hint: str | None = None) -> None:
        self.add(Problem(text, hint))

    def raise_if_any(self, origin: str) -> None:
        if self.found:
            ordered = sorted(self.found, key=lambda p: p.position)   # stable: found order
            raise ConfigProblems(origin, ordered)
