"""The build report: a timing table for people, the same data as JSON for
machines, and, when the build failed, why (``failure``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dib.errors import HookError


@dataclass
class StepReport:
    name: str
    key: str
    seconds: float = 0.0
    cached: bool = False
    reason: str = ""
    hooks: list[dict[str, Any]] = field(default_factory=list)
    #: "local-hit", "remote-hit" or "miss"; "" for a step without a key
    cache: str = ""
    #: {"bytes", "seconds"} of the entry pulled from / pushed to the remote cache;
    #: pulled also says whether the step's layer came ("layer"): a step whose
    #: layer nothing needed sent only its record
    pulled: dict[str, float] | None = None
    pushed: dict[str, float] | None = None

    def explanation(self) -> str:
        if self.cache == "remote-hit" and self.pulled:
            if not self.pulled.get("layer", True):
                return (f"pulled from the remote cache (its record, {transfer_text(self.pulled)}; "
                        "the layer only if something needs the tree)")
            return f"pulled from the remote cache ({transfer_text(self.pulled)})"
        if self.cached:
            return "reused from cache"
        return f"rebuilt: {self.reason}" if self.reason else "rebuilt"


def transfer_text(transfer: dict[str, float]) -> str:
    size = float(transfer["bytes"])
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    shown = f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
    return f"{shown} in {transfer['seconds']:.1f} s"


@dataclass
class FailureReport:
    """Why a build failed. For a failed hook: its element, phase and name, its
    exit status and whether it ran out of time; otherwise those are None."""

    message: str
    element: str | None = None
    phase: str | None = None
    hook: str | None = None
    exit_status: int | None = None
    timed_out: bool = False
    output_tail: str = ""

    @classmethod
    def from_error(cls, error: BaseException) -> "FailureReport":
        if isinstance(error, HookError):
            return cls(error.message.splitlines()[0], error.element, error.phase, error.hook,
                       error.returncode, error.timed_out, error.output_tail)
        text = str(error) or type(error).__name__
        return cls(text.splitlines()[0], output_tail=text)


@dataclass
class BuildReport:
    image_name: str
    elements: list[str]
    seconds: float = 0.0
    steps: list[StepReport] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    #: set when the build failed; the report is written either way
    failure: FailureReport | None = None

    def table(self, slowest: int = 5) -> str:
        width = max([14, *(len(step.name) for step in self.steps)])
        lines = [f"{'step':<{width}}  seconds  cache", f"{'-' * width}  -------  -----"]
        for step in self.steps:
            cache = "hit" if step.cached else ("-" if not step.key else "miss")
            if step.cache == "remote-hit":
                cache = "remote hit"
                if step.pulled and not step.pulled.get("layer", True):
                    cache += " (record)"
            if step.pushed:
                cache += ", pushed"
            lines.append(f"{step.name:<{width}}  {step.seconds:7.2f}  {cache}")
        lines.append(f"{'total':<{width}}  {self.seconds:7.2f}")
        ran = sorted((h for h in self.hooks if h.get("exit") is not None),
                     key=lambda h: h["seconds"], reverse=True)[:slowest]
        if ran:
            lines.append("slowest hooks:")
            lines.extend(f"  {h['seconds']:7.2f}  {h['phase']}.d/{h['hook']} ({h['element']})"
                         for h in ran)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
