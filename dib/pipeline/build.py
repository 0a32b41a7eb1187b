"""The order of a whole build.

``run_build`` and ``build`` run in the caller's process: they check everything
they can before slow work, create the workspace and start the build proper
(``Builder``, in ``dib.pipeline.inner``) in a private mount namespace.
"""
from __future__ import annotations

import logging
import pickle
import sys

from dib.config.build import BuildConfig
from dib.pipeline.artifacts import DiskArtifacts
from dib.pipeline.preflight import preflight
from dib.pipeline.prepare import Prepared, prepare
from dib.pipeline.reproducible import check_reproducible
from dib.plan import describe
from dib.runtime.namespace import run_namespaced
from dib.runtime.workspace import Workspace, remove_stale

LOG = logging.getLogger("dib.build")
HANDOVER_FILE = "build.pickle"


def run_build(config: BuildConfig) -> int:
    """A build from its settings (or, with --dry-run, its plan); the exit status."""
    prepared = prepare(config)
    if config.dry_run:
        sys.stdout.write(describe(prepared.plan))
        return 0
    if config.check_reproducible:
        return check_reproducible(config, lambda c: build(prepare(c)))
    return build(prepared)


def build(prepared: Prepared) -> int:
    config = prepared.config
    preflight(prepared)
    workspace = Workspace.create(config.workdir)
    hand_over(prepared, workspace)
    status = 1
    try:
        status = run_namespaced("dib.pipeline.inner", [str(workspace.root)])
    finally:
        if status != 0 and config.keep_workspace:
            workspace.keep()
            LOG.info("workspace kept for inspection: %s", workspace.root)
        else:
            workspace.remove()
        # A build killed outright (SIGKILL) may still have been exiting when
        # this one started: look again now.
        remove_stale(workspace.root.parent)
    return status


def hand_over(prepared: Prepared, workspace: Workspace) -> None:
    """Leave for the build proper what this process worked out: the settings
    and the block-device layout the preflight read (so it is read once)."""
    (workspace.root / HANDOVER_FILE).write_bytes(pickle.dumps((prepared.config, prepared.disk)))


def take_over(workspace: Workspace) -> tuple[BuildConfig, DiskArtifacts | None]:
    """In the build proper: what ``hand_over`` left."""
    return pickle.loads((workspace.root / HANDOVER_FILE).read_bytes())
