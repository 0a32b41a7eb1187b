"""Checks made before the first hook runs, each with a clear way out."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from dib import runner, sbom
from dib.elements.model import Element, environment_files
from dib.elements.variables import classify_line
from dib.errors import PreflightError
from dib.pipeline import artifacts
from dib.pipeline.prepare import Prepared
from dib.runtime.userns_preflight import rootless_findings

GiB = 1 << 30
# What every build needs on the host: (tool, Debian package).
BUILD_TOOLS = (("unshare", "util-linux"), ("chroot", "coreutils"), ("mount", "mount"),
               ("bash", "bash"))
# The debootstrap element uses mmdebstrap, or debootstrap when mmdebstrap is
# absent or a suite script is named (BOOTSTRAP_HOOK).
BOOTSTRAP_ELEMENT = "debootstrap"
BOOTSTRAP_HOOK = "root.d/08-debootstrap"
SUITE_SCRIPT = "DIB_DEBIAN_DEBOOTSTRAP_SCRIPT"


def preflight(prepared: Prepared) -> None:
    config = prepared.config
    rootless = os.geteuid() != 0
    artifacts.check_outputs(prepared)
    artifacts.check_block_device(prepared, rootless=rootless)
    if rootless:
        check_rootless_bootstrap(prepared, have_mmdebstrap=runner.which("mmdebstrap") is not None)
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


def check_rootless_bootstrap(prepared: Prepared, *, have_mmdebstrap: bool) -> None:
    """Without root the tree must come from mmdebstrap, which copes with a
    user namespace; debootstrap makes device nodes with mknod and mounts
    /sys, both refused there, so a build that would fall back to it stops
    now rather than at the end of the root.d phase."""
    if BOOTSTRAP_ELEMENT not in prepared.resolution.names:
        return
    why, fix = _debootstrap_reason(prepared, have_mmdebstrap)
    if why:
        raise PreflightError(
            f"element '{BOOTSTRAP_ELEMENT}' ({BOOTSTRAP_HOOK}) would bootstrap the tree with "
            f"debootstrap because {why}; debootstrap needs root (it creates device nodes and "
            "mounts /sys), a build without root needs mmdebstrap",
            hint=f"{fix}, or build as root")


def _debootstrap_reason(prepared: Prepared, have_mmdebstrap: bool) -> tuple[str, str]:
    """Why the debootstrap element would choose debootstrap, and what to do
    about it; empty strings when it would choose mmdebstrap."""
    if not have_mmdebstrap:
        return "mmdebstrap is not installed", "apt-get install mmdebstrap"
    script = prepared.config.environ.get(SUITE_SCRIPT, "")
    if script:
        return (f"{SUITE_SCRIPT} is set (to {script!r})",
                f"unset {SUITE_SCRIPT} (mmdebstrap needs no suite script)")
    for element in prepared.resolution.elements:
        setter = _assigning_file(element, SUITE_SCRIPT)
        if setter is not None:
            return (f"element '{element.name}' sets {SUITE_SCRIPT} in "
                    f"environment.d/{setter.name}",
                    f"leave element '{element.name}' out")
    return "", ""


def _assigning_file(element: Element, variable: str) -> Path | None:
    """The first environment.d file of ``element`` that gives ``variable`` a
    value (read, not run: an element that sets it means to use it; one that
    only passes the caller's value on, ``X=${X:-}``, does not count)."""
    passed_on = re.compile(rf"""(["']?)(\$\{{?{variable}(:-)?}}?)?\1""")
    for path in environment_files(element.path):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if variable not in classify_line(line)[1]:
                continue
            assigned = re.search(rf"{variable}\+?=(\S*)", line)
            value = re.split(r"[;&|)]", assigned.group(1))[0] if assigned else ""
            if not passed_on.fullmatch(value):
                return path
    return None


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
