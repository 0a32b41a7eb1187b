"""What dib lint found: findings, the report, and the two output formats."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple


class Problem(NamedTuple):
    """What a rule's check reports; the linter makes a Finding of it."""

    path: Path
    line: int
    message: str
    element: str | None = None      # when not the element being checked


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


def format_text(report: LintReport) -> str:
    return "".join(f.text() + "\n" for f in report.findings)


def format_json(report: LintReport) -> str:
    return json.dumps([f.as_dict() for f in report.findings], indent=2) + "\n"
