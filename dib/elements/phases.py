"""The build's phases: DIB's order, where each runs, which are hook directories.

This is the one phase table. It lives in the elements layer because an
element's hook directories are named after phases and package-installs
entries may name one; the plan, the runtime, the cache, lint and the hook
test harness all read it from here (``dib.plan`` re-exports it).
"""
from __future__ import annotations

from dataclasses import dataclass

from dib.errors import PlanError


@dataclass(frozen=True)
class Phase:
    name: str
    in_chroot: bool
    help: str
    #: an element may have a ``<name>.d`` hook directory for it
    hooks: bool = True
    #: a package-installs entry may name it (``phase: <name>.d``)
    package_installs: bool = False
    #: a cached step of the build: what its hooks write is kept as a layer.
    #: A phase that only checks runs on every build, before the first step.
    step: bool = True

    @property
    def directory(self) -> str:
        return f"{self.name}.d"


# DIB's order and places. "packages" is not a hook directory: it installs -p
# packages right after install.d, as disk-image-create does. The package-installs
# element has a hook in each of pre-install.d, install.d and post-install.d.
# "preflight" is dib's own: DIB runs no such directory, so an element's checks
# of its settings, which DIB can only make once root.d has bootstrapped the
# tree, fail a dib build before any slow work, cached or not.
PHASES: tuple[Phase, ...] = (
    Phase("preflight", False, "check settings before any work; writes nothing",
          step=False),
    Phase("root", False, "create the root tree (TARGET_ROOT)"),
    Phase("extra-data", False, "copy data into the hooks tree or the target"),
    Phase("pre-install", True, "prepare the package manager", package_installs=True),
    Phase("install", True, "install and configure software", package_installs=True),
    Phase("packages", True, "install the -p packages", hooks=False),
    Phase("post-install", True, "adjust what install.d set up", package_installs=True),
    Phase("post-root", False, "host-side work on the finished tree"),
    Phase("block-device", False, "legacy block-device hooks"),
    Phase("pre-finalise", False, "host-side work before finalise"),
    Phase("finalise", True, "last changes inside the image"),
    Phase("cleanup", False, "host-side cleanup of the tree (TARGET_ROOT)"),
)
PHASE_NAMES = tuple(p.name for p in PHASES)
#: the phases an element can have hooks for, in the order a build runs them
HOOK_PHASES = tuple(p for p in PHASES if p.hooks)
HOOK_PHASE_NAMES = tuple(p.name for p in HOOK_PHASES)


def phase(name: str) -> Phase:
    for candidate in PHASES:
        if candidate.name == name:
            return candidate
    raise PlanError(f"unknown phase '{name}'; phases are {', '.join(PHASE_NAMES)}")
