"""Checks made before the first hook runs, each with a clear way out."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from dib import runner, sbom
from dib.errors import PreflightError
from dib.pipeline import artifacts
from dib.pipeline.prepare import Prepared
from dib.runtime.userns_preflight import rootless_findings

GiB = 1 << 30
# What every build needs on the host: (tool, Debian package).
BUILD_TOOLS = (("unshare", "util-linux"), ("chroot", "coreutils"), ("mount", "mount"),
               ("bash", "bash"))
# The debootstrap element uses mmdebstrap, or debootstrap when mmdebstrap is absent.
BOOTSTRAP_ELEMENT = "debootstrap"


def preflight(prepared: Prepared) -> None:
    config = prepared.config
    artifacts.check_outputs(prepared)
    artifacts.check_block_device(prepared)
    if os.geteuid() != 0:
        _check_rootless()
    runner.require_tools(_required_tools(prepared), "this build")
    _check_space(Path(config.workdir), needed=_space_needed(prepared), what="work directory")
    if config.host_ca_bundle and not os.path.isfile(config.host_ca_bundle):
        raise PreflightError(f"--host-ca-bundle/DIB_HOST_CA_BUNDLE: {config.host_ca_bundle} "
                             "is not a file",
                             hint="name the CA bundle hooks should trust, or 'none'")
    _check_repository_overrides(prepared)
    if config.sbom:
        # found now rather than when the SBOM is written, after every phase
        # (the outputs read the same variable)
        sbom.check_source_date_epoch(config.environ.get("SOURCE_DATE_EPOCH"))
    out_dir = Path(config.image_name).parent
    if not out_dir.is_dir():
        raise PreflightError(f"output directory {out_dir} does not exist",
                             hint="create it or pass another -o")


def _check_rootless() -> None:
    """Without root the build runs in a user namespace: everything that
    takes must be there."""
    findings = rootless_findings()
    if findings:
        raise PreflightError(
            "building an image without root needs a user namespace with subordinate ids; "
            "this host lacks:\n" + "\n".join(f"  - {f.problem}" for f in findings),
            hint="run as root, or fix each: " + "; ".join(dict.fromkeys(f.fix for f in findings)))


def _check_repository_overrides(prepared: Prepared) -> None:
    """A DIB_REPOLOCATION_<name> that names a local path must exist: found
    now, not after the bootstrap when source-repositories fetches it."""
    environ = prepared.config.environ
    for element in prepared.resolution.elements:
        for repo in element.source_repositories:
            variable = "DIB_REPOLOCATION_" + re.sub(r"[^A-Za-z0-9]", "_", repo.name)
            location = environ.get(variable, "")
            local = location[len("file://"):] if location.startswith("file://") else location
            if local.startswith("/") and not os.path.exists(local):
                raise PreflightError(
                    f"{variable}={location}: no such file or directory (source repository "
                    f"'{repo.name}' of element '{element.name}', {repo.file.name})",
                    hint="point it at an existing local repository or unset it to fetch "
                         f"{repo.location}; the source-repositories element fetches it")


def _required_tools(prepared: Prepared) -> list[tuple[str, str]]:
    tools = list(BUILD_TOOLS)
    if BOOTSTRAP_ELEMENT in prepared.resolution.names and runner.which("debootstrap") is None:
        tools.append(("mmdebstrap", "mmdebstrap"))
    tools.extend(artifacts.required_tools(prepared))
    return tools


def _space_needed(prepared: Prepared) -> int:
    return 4 * GiB if artifacts.needs_disk(prepared) else 2 * GiB


def _check_space(path: Path, *, needed: int, what: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free
    if free < needed:
        raise PreflightError(
            f"{what} {path} has {free / GiB:.1f} GiB free; this build needs about "
            f"{needed / GiB:.0f} GiB", hint="free some space or choose another --workdir")
