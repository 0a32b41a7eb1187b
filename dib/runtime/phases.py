"""Running one phase: its hooks through dib-run-parts, on the host or in the chroot."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from dib import runner
from dib.errors import CommandError, CommandTimeout, HookError
from dib.plan import Phase
from dib.runtime import mounts
from dib.runtime.environment import chroot_phase_env, host_phase_env
from dib.runtime.workspace import Workspace

LOG = logging.getLogger("dib.phase")
HOOK_LOG = logging.getLogger("dib.hook")
IN_TARGET = "tmp/in_target.d"
CHROOT_EVENTS = "tmp/.dib-run-parts-events.jsonl"
POLICY_RC_D = "usr/sbin/policy-rc.d"
# The host's CA bundle, seen in the chroot while a phase runs (a directory
# bind: a hook that empties /tmp cannot trip over a mounted file there).
HOST_CA_DIR = "run/dib-host-ca"
HOST_CA_FILE = "ca-certificates.crt"
# Variables through which pip, requests, curl, git, OpenSSL and node find CAs.
CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE",
                "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS")


@dataclass
class HookRun:
    phase: str
    hook: str
    element: str
    exit: int | None
    seconds: float


@dataclass
class PhaseRun:
    phase: str
    seconds: float = 0.0
    hooks: list[HookRun] = field(default_factory=list)


@dataclass
class PhaseContext:
    workspace: Workspace
    env: Mapping[str, str]
    hook_elements: Mapping[str, str]      # "phase/hook" → element
    hook_timeout: float = 0
    break_points: tuple[str, ...] = ()
    host_ca_bundle: Path | None = None
    on_hook: Callable[[HookRun], None] | None = None


@dataclass(frozen=True)
class HookRange:
    """Part of a phase: its hooks up to and including ``through``, or those
    after ``after`` (dib-run-parts --through / --after)."""
    through: str | None = None
    after: str | None = None

    def run_parts_options(self) -> list[str]:
        if self.through is not None:
            return ["--through", self.through]
        if self.after is not None:
            return ["--after", self.after]
        return []


WHOLE_PHASE = HookRange()


def run_phase(ctx: PhaseContext, phase: Phase, *, argv: list[str] | None = None,
              part: HookRange = WHOLE_PHASE) -> PhaseRun:
    """Run one phase's hooks, or the ``part`` of them, (or ``argv`` in their
    place, for the -p packages step). The phase's break points open before
    its first part and after its last."""
    if part.after is None:
        _maybe_break(ctx, phase, f"before-{phase.name}")
    started = time.monotonic()
    run = PhaseRun(phase.name)
    try:
        if phase.in_chroot:
            _run_in_chroot(ctx, phase, run, argv or _run_parts_argv("/" + IN_TARGET, phase, part))
        else:
            _run_on_host(ctx, phase, run, argv or _run_parts_argv(str(ctx.workspace.hooks),
                                                                  phase, part))
    except HookError:
        _maybe_break(ctx, phase, "after-error")
        raise
    run.seconds = time.monotonic() - started
    if part.through is None:
        _maybe_break(ctx, phase, f"after-{phase.name}")
    return run


def phase_hooks(ctx: PhaseContext, phase: Phase) -> list[str]:
    """The names of the phase's hooks in the order dib-run-parts runs them."""
    directory = ctx.workspace.hooks / phase.directory
    if not directory.is_dir():
        return []
    listed = runner.run(["bash", str(ctx.workspace.hooks / "bin" / "dib-run-parts"), "--list",
                         str(directory)], env=ctx.env, what=f"listing {phase.directory}")
    return [os.path.basename(line) for line in listed.stdout.splitlines() if line]


def _run_parts_argv(hooks_root: str, phase: Phase, part: HookRange) -> list[str]:
    return [f"{hooks_root}/bin/dib-run-parts", *part.run_parts_options(),
            f"{hooks_root}/{phase.directory}"]


def _run_on_host(ctx: PhaseContext, phase: Phase, run: PhaseRun, command: list[str]
                 ) -> None:
    ws = ctx.workspace
    events = ws.root / f"events-{phase.name}.jsonl"
    env = host_phase_env(ctx.env, ws)
    env["DIB_RUN_PARTS_EVENTS"] = str(events)
    _execute(ctx, phase, run, command, env, events)


def _run_in_chroot(ctx: PhaseContext, phase: Phase, run: PhaseRun, inner: list[str]
                   ) -> None:
    ws = ctx.workspace
    tree = ws.tree
    env = chroot_phase_env(ctx.env)
    env["DIB_RUN_PARTS_EVENTS"] = "/" + CHROOT_EVENTS
    # A PID namespace of its own: whatever a hook starts dies with the phase.
    command = ["unshare", "--pid", "--fork", "--kill-child", "--mount",
               f"--mount-proc={tree / 'proc'}", "chroot", str(tree), *inner]
    with mounts.CleanupStack() as cleanup:
        prepare_chroot(tree, ws.hooks, cleanup)
        if ctx.host_ca_bundle is not None:
            env.update(trust_host_cas(tree, ctx.host_ca_bundle, ws.root, cleanup))
        _execute(ctx, phase, run, command, env, tree / CHROOT_EVENTS)


def prepare_chroot(tree: Path, hooks: Path, cleanup: mounts.CleanupStack) -> None:
    """Mounts and files a chroot phase needs, each undone after the phase so
    that what the phase leaves in the tree is only what its hooks did."""
    mounts.chroot_mounts(tree, cleanup=cleanup)
    in_target = tree / IN_TARGET
    created = not in_target.exists()
    in_target.mkdir(parents=True, exist_ok=True)
    if created:
        cleanup.push("in_target.d mount point", lambda: _rmdir(in_target))
    mounts.bind_readonly(hooks, in_target, cleanup=cleanup)
    _swap_resolv_conf(tree, cleanup)
    _block_services(tree, cleanup)


def trust_host_cas(tree: Path, bundle: Path, scratch: Path,
                   cleanup: mounts.CleanupStack) -> dict[str, str]:
    """Make the host's CA bundle visible in the chroot for one phase and
    return the variables that point tools at it. Hooks that fetch (pip, git,
    curl) then work behind a TLS-intercepting proxy whose CA only the host
    trusts; the image's own trust store is not touched."""
    source = scratch / "host-ca"
    source.mkdir(exist_ok=True)
    shutil.copyfile(bundle, source / HOST_CA_FILE)
    target = tree / HOST_CA_DIR
    missing = [p for p in (target.parent, target) if not p.exists()]
    for path in missing:
        path.mkdir()
    for path in missing:
        cleanup.push(f"{path} mount point", lambda path=path: _rmdir(path))
    mounts.bind_readonly(source, target, cleanup=cleanup)
    inside = f"/{HOST_CA_DIR}/{HOST_CA_FILE}"
    return {name: inside for name in CA_VARIABLES}


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _swap_resolv_conf(tree: Path, cleanup: mounts.CleanupStack) -> None:
    """The host's resolver during the phase; the image's own file afterwards,
    unless a hook replaced it on purpose."""
    target = tree / "etc" / "resolv.conf"
    if not target.parent.is_dir():
        return
    original: tuple[str, str | bytes] | None = None
    if target.is_symlink():
        original = ("link", os.readlink(target))
    elif target.exists():
        original = ("file", target.read_bytes())
    try:
        host = Path("/etc/resolv.conf").read_bytes()
    except OSError:
        host = b""
    if target.is_symlink() or target.exists():
        target.unlink()
    target.write_bytes(host)

    def restore() -> None:
        try:
            changed = target.is_symlink() or target.read_bytes() != host
        except OSError:
            changed = True
        if changed:
            return
        target.unlink()
        if original is None:
            return
        kind, value = original
        if kind == "link":
            os.symlink(value, target)
        else:
            target.write_bytes(value)  # type: ignore[arg-type]
    cleanup.push("resolv.conf", restore)


def _block_services(tree: Path, cleanup: mounts.CleanupStack) -> None:
    """policy-rc.d that refuses every service start while hooks run."""
    policy = tree / POLICY_RC_D
    if not policy.parent.is_dir() or policy.exists() or policy.is_symlink():
        return
    policy.write_text("#!/bin/sh\n# written by dib for the duration of a build phase\nexit 101\n")
    policy.chmod(0o755)
    cleanup.push("policy-rc.d", lambda: policy.unlink(missing_ok=True))


def _execute(ctx: PhaseContext, phase: Phase, run: PhaseRun, command: list[str],
             env: Mapping[str, str], events_file: Path) -> None:
    events_file.unlink(missing_ok=True)
    LOG.info("running %s.d (%s)", phase.name, "chroot" if phase.in_chroot else "host")
    try:
        # A timeout must end the hook that hangs, not only dib-run-parts above
        # it: the phase runs in a process group of its own, killed as one. An
        # interactive build keeps the terminal's group so a breakpoint's shell
        # can read it.
        interactive = _interactive()
        runner.stream(command, env=env, on_line=lambda line: HOOK_LOG.info("%s", line),
                      timeout=ctx.hook_timeout or None, what=f"phase {phase.directory}",
                      stdin=None if interactive else subprocess.DEVNULL,
                      own_group=not interactive)
        failure = None
    except CommandError as exc:
        failure = exc
    hooks = _read_events(ctx, phase, events_file)
    events_file.unlink(missing_ok=True)
    run.hooks.extend(hooks)
    for hook in hooks:
        if ctx.on_hook:
            ctx.on_hook(hook)
    if failure is not None:
        timed_out = isinstance(failure, CommandTimeout)
        failed = next((h for h in reversed(hooks) if h.exit != 0), None)
        if failed is None:
            # No hook ran (or the runner itself failed): report the command.
            raise HookError("-", phase.name, os.path.basename(command[-1]),
                            failure.returncode, failure.output_tail, timed_out=timed_out)
        tail = "\n".join(line for line in failure.output_tail.splitlines()
                         if not line.startswith("dib-run-parts"))
        code = failed.exit if failed.exit is not None else failure.returncode
        if timed_out:
            tail += f"\n(hook timed out after {ctx.hook_timeout} s)"
        raise HookError(failed.element, phase.name, failed.hook, code, tail,
                        timed_out=timed_out)


def _read_events(ctx: PhaseContext, phase: Phase, path: Path) -> list[HookRun]:
    runs: dict[str, HookRun] = {}
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        name = event.get("hook", "?")
        element = ctx.hook_elements.get(f"{phase.name}/{name}", "?")
        if event.get("event") == "start":
            runs[name] = HookRun(phase.name, name, element, None, 0.0)
        elif event.get("event") == "end":
            runs[name] = HookRun(phase.name, name, element, int(event.get("exit", 0)),
                                 float(event.get("seconds", 0.0)))
    return list(runs.values())


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _maybe_break(ctx: PhaseContext, phase: Phase, point: str) -> None:
    if point not in ctx.break_points:
        return
    if not _interactive():
        LOG.warning("break=%s ignored: no terminal to open a shell on", point)
        return
    LOG.info("break=%s: opening a shell %s; exit it to continue", point,
             "in the chroot" if phase.in_chroot else f"in {ctx.workspace.tree}")
    tree = ctx.workspace.tree
    # The shell is started directly, not through dib.runner: it must share
    # the terminal with us (our session and foreground process group) for job
    # control and for a Ctrl-C to reach it rather than the build, and it has
    # no output to capture or time limit to keep.
    if phase.in_chroot:
        with mounts.CleanupStack() as cleanup:
            prepare_chroot(tree, ctx.workspace.hooks, cleanup)
            os.spawnvpe(os.P_WAIT, "chroot", ["chroot", str(tree), "/bin/bash", "-i"],
                        dict(chroot_phase_env(ctx.env)))
    else:
        env = dict(host_phase_env(ctx.env, ctx.workspace))
        os.spawnvpe(os.P_WAIT, "bash", ["bash", "-i"], env)
