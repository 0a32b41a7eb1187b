"""The build plan: resolved elements → phases in DIB's order → merged hooks → steps.

Each step carries where it runs (on the host, or inside the chroot), as the
phase table (``dib.elements.phases``) says.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from dib.elements.formats import sort_n_key
from dib.elements.model import Element, HookFile
# The phase table lives in the elements layer (hook directories are named after
# phases); the plan's users read it from here too.
from dib.elements.phases import (HOOK_PHASES, PHASE_NAMES, PHASES, Phase,  # noqa: F401
                                 phase)
from dib.errors import PlanError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    phase: str
    hook: str
    element: str
    path: Path
    in_chroot: bool


@dataclass
class Plan:
    elements: tuple[Element, ...]
    steps: list[Step] = field(default_factory=list)
    skipped: list[HookFile] = field(default_factory=list)
    packages: tuple[str, ...] = ()

    def steps_of(self, phase_name: str) -> list[Step]:
        return [s for s in self.steps if s.phase == phase_name]


def merge_hooks(elements: Iterable[Element], phase_name: str) -> tuple[list[HookFile],
                                                                       list[HookFile]]:
    """All runnable hooks of one phase across elements, sorted as ``sort -n``.

    Returns (runnable, skipped). The same hook name in two elements is an
    error, because DIB merges hook directories into one.
    """
    runnable: dict[str, HookFile] = {}
    skipped: list[HookFile] = []
    for element in elements:
        for hook in element.hooks(phase_name):
            if not hook.runs:
                skipped.append(hook)
                continue
            other = runnable.get(hook.name)
            if other is not None:
                raise PlanError(
                    f"hook name '{hook.name}' in phase {phase_name}.d is used by two "
                    f"elements: {other.path} and {hook.path}",
                    hint="rename one of the hooks; hook names must be unique in a phase")
            runnable[hook.name] = hook
    ordered = sorted(runnable.values(), key=lambda h: sort_n_key(h.name))
    return ordered, skipped


def make_plan(elements: Iterable[Element], *, packages: Iterable[str] = ()) -> Plan:
    elements = tuple(elements)
    plan = Plan(elements=elements, packages=tuple(packages))
    for ph in HOOK_PHASES:
        hooks, skipped = merge_hooks(elements, ph.name)
        for hook in skipped:
            LOG.debug("not running %s/%s of %s: %s", ph.directory, hook.name, hook.element,
                      hook.skipped_reason)
        plan.skipped.extend(skipped)
        plan.steps.extend(Step(ph.name, h.name, h.element, h.path, ph.in_chroot)
                          for h in hooks)
    return plan


def describe(plan: Plan) -> str:
    """The plan as text, for --dry-run."""
    lines = [f"elements: {' '.join(e.name for e in plan.elements)}"]
    for ph in PHASES:
        where = "chroot" if ph.in_chroot else "host"
        if ph.name == "packages":
            if plan.packages:
                lines.append(f"{ph.directory[:-2]} [{where}]: install-packages "
                             f"{' '.join(plan.packages)}")
            continue
        steps = plan.steps_of(ph.name)
        if not steps:
            continue
        lines.append(f"{ph.directory} [{where}]")
        width = max(len(s.hook) for s in steps)
        lines.extend(f"  {s.hook:<{width}}  {s.element}" for s in steps)
    if plan.skipped:
        lines.append("not run (see --debug for why):")
        lines.extend(f"  {h.phase}.d/{h.name} ({h.element}): {h.skipped_reason}"
                     for h in plan.skipped)
    return "\n".join(lines) + "\n"
