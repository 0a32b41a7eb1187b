"""The build plan: resolved elements → phases in DIB's order → merged hooks → steps.

This is where a phase's place is decided: on the host, or inside the chroot.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from dib.elements.formats import sort_n_key
from dib.elements.model import Element, HookFile
from dib.errors import PlanError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Phase:
    name: str
    in_chroot: bool
    help: str

    @property
    def directory(self) -> str:
        return f"{self.name}.d"


# DIB's order and places. "packages" is not a hook directory: it installs -p
# packages right after install.d, as disk-image-create does.
PHASES: tuple[Phase, ...] = (
    Phase("root", False, "create the root tree (TARGET_ROOT)"),
    Phase("extra-data", False, "copy data into the hooks tree or the target"),
    Phase("pre-install", True, "prepare the package manager"),
    Phase("install", True, "install and configure software"),
    Phase("packages", True, "install the -p packages"),
    Phase("post-install", True, "adjust what install.d set up"),
    Phase("post-root", False, "host-side work on the finished tree"),
    Phase("block-device", False, "legacy block-device hooks"),
    Phase("pre-finalise", False, "host-side work before finalise"),
    Phase("finalise", True, "last changes inside the image"),
    Phase("cleanup", False, "host-side cleanup of the tree (TARGET_ROOT)"),
)
PHASE_NAMES = tuple(p.name for p in PHASES)
HOOK_PHASES = tuple(p for p in PHASES if p.name != "packages")


def phase(name: str) -> Phase:
    for candidate in PHASES:
        if candidate.name == name:
            return candidate
    raise PlanError(f"unknown phase '{name}'; phases are {', '.join(PHASE_NAMES)}")


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
