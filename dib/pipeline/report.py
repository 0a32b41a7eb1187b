"""The build report: a timing table for people, the same data as JSON for machines."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StepReport:
    name: str
    key: str
    seconds: float = 0.0
    cached: bool = False
    reason: str = ""
    hooks: list[dict[str, Any]] = field(default_factory=list)

    def explanation(self) -> str:
        if self.cached:
            return "reused from cache"
        return f"rebuilt: {self.reason}" if self.reason else "rebuilt"


@dataclass
class BuildReport:
    image_name: str
    elements: list[str]
    seconds: float = 0.0
    steps: list[StepReport] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def table(self, slowest: int = 5) -> str:
        lines = ["step            seconds  cache", "--------------  -------  -----"]
        for step in self.steps:
            cache = "hit" if step.cached else ("-" if not step.key else "miss")
            lines.append(f"{step.name:<14}  {step.seconds:7.2f}  {cache}")
        lines.append(f"{'total':<14}  {self.seconds:7.2f}")
        ran = sorted((h for h in self.hooks if h.get("exit") is not None),
                     key=lambda h: h["seconds"], reverse=True)[:slowest]
        if ran:
            lines.append("slowest hooks:")
            lines.extend(f"  {h['seconds']:7.2f}  {h['phase']}.d/{h['hook']} ({h['element']})"
                         for h in ran)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
