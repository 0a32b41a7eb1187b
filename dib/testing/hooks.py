"""Running one hook of one element, fast, without root and without touching the host.

``run_hook(element, phase, hook, root=..., stubs=...)`` runs the hook the way a
build would: DIB's environment, and the shipped ``dib-run-parts`` (the one the
build runs) on the phase directory of a private copy of the element in which
only this hook is runnable, so ``environment.d`` is sourced just as in a build.
It returns a ``HookResult``.

Where it runs:

* chroot phases (pre-install, install, post-install, finalise) run in a
  bubblewrap sandbox whose ``/`` is the fake root; the host's ``/usr`` is bound
  read-only so host tools are there, except ``/usr/local`` and
  ``/usr/lib/systemd/system``, which are the fake root's own. Anything the hook
  writes (``/etc/foo``, ``/usr/local/bin/foo``) lands in the fake root. The
  element is at ``/tmp/in_target.d`` as in a build.
* host phases (root, extra-data, post-root, block-device, pre-finalise, cleanup)
  see the fake root as ``TARGET_ROOT``/``TMP_MOUNT_PATH``; with bubblewrap they run
  with the host's ``/`` read-only and only the fake root, the hooks copy and the
  stub log writable.

Either way the network is unshared and the stubs are first on ``PATH``.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from dib import runner
from dib.config.build import host_arch
from dib.elements.discovery import shipped_hooks_dir
from dib.elements.model import Element
from dib.elements.phases import HOOK_PHASE_NAMES, HOOK_PHASES
from dib.elements.phases import phase as phase_of
from dib.errors import CommandTimeout
from dib.runtime import hooktree
from dib.testing.fixtures import (SANDBOX_STUB_BASE, CallRecord, FakeTargetRoot,
                                  HarnessError, StubCommands)

CHROOT_PHASES = tuple(p.name for p in HOOK_PHASES if p.in_chroot)
HOST_PHASES = tuple(p.name for p in HOOK_PHASES if not p.in_chroot)
IN_TARGET = "/tmp/in_target.d"
RUN_PARTS = "dib-run-parts"
DEFAULT_TIMEOUT = 30.0
TIMEOUT_EXIT = 124
BWRAP_PACKAGE = "bubblewrap"
# Host top-level directories a sandboxed hook needs besides /usr.
_HOST_TOP = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Where image hooks install things under /usr: the fake root's own directories
# are bound over the host's read-only /usr there, so such hooks can be tested.
_WRITABLE_USR = ("usr/local", "usr/lib/systemd/system")


@dataclass
class HookResult:
    """What one hook run did."""

    exit_code: int
    output: str                     # stdout and stderr, interleaved
    calls: list[CallRecord] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: bool = False
    argv: list[str] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def calls_to(self, name: str) -> list[CallRecord]:
        return [c for c in self.calls if c.name == name]


# --------------------------------------------------------------------------- helpers

def find_element_dir(element: str | os.PathLike, *,
                     search: Sequence[str | os.PathLike] = ()) -> Path:
    """An element directory from a path, or from a name looked up in ``search``,
    then ``ELEMENTS_PATH``, then the installed element directories."""
    candidate = Path(element)
    if candidate.is_dir():
        return candidate.resolve()
    name = os.fspath(element)
    if os.sep in name:
        raise HarnessError(f"element directory '{name}' does not exist")
    dirs = [Path(p) for p in search]
    dirs += [Path(p) for p in os.environ.get("ELEMENTS_PATH", "").split(":") if p]
    try:
        from dib.elements.discovery import entry_point_dirs
        dirs += entry_point_dirs()
    except Exception:  # discovery problems must not hide the real error below
        pass
    for directory in dirs:
        if (directory / name).is_dir():
            return (directory / name).resolve()
    raise HarnessError(f"element '{name}' not found",
                       hint="pass the element's directory, or set ELEMENTS_PATH")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def require_bwrap() -> str:
    path = bwrap_path()
    if path is None:
        raise HarnessError("running a chroot-phase hook needs bubblewrap ('bwrap'), "
                           "which is not installed",
                           hint=f"apt-get install {BWRAP_PACKAGE}")
    return path


def hook_environment(*, phase: str, element: str, hooks_dir: str, root: str | None,
                     stubs_bin: str | None, extra: Mapping[str, str] | None,
                     in_chroot: bool) -> dict[str, str]:
    """DIB's environment for one hook (clean: nothing leaks in from the caller)."""
    path_parts = []
    if stubs_bin:
        path_parts.append(stubs_bin)
    path_parts.append(f"{hooks_dir}/bin")
    path_parts += ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin",
                   "/bin"]
    env = {
        "PATH": ":".join(path_parts),
        "HOME": "/root" if in_chroot else os.environ.get("HOME", "/root"),
        "LC_ALL": "C",
        "LANG": "C",
        "TERM": os.environ.get("TERM", "dumb"),
        "ARCH": host_arch(),
        "DISTRO_NAME": "debian",
        "DIB_RELEASE": "bookworm",
        "DIB_INIT_SYSTEM": "systemd",
        "DIB_DEBUG_TRACE": "0",
        "DIB_OFFLINE": "",
        "DIB_DEFAULT_INSTALLTYPE": "package",
        "IMAGE_ELEMENT": element,
        "IMAGE_NAME": "image",
        "TMP_HOOKS_PATH": hooks_dir,
        "_LIB": f"{hooks_dir}/lib",
        "DIB_TESTING": "1",
        "DIB_TESTING_PHASE": phase,
    }
    if root is not None:
        env["TARGET_ROOT"] = root
        env["TMP_MOUNT_PATH"] = root
    if extra:
        env.update({str(k): str(v) for k, v in extra.items()})
    return env


# --------------------------------------------------------------------------- running

def run_hook(element: str | os.PathLike, phase: str, hook: str, *,
             root: FakeTargetRoot | str | os.PathLike,
             stubs: StubCommands | None = None,
             env: Mapping[str, str] | None = None,
             stdin: str | bytes | None = None,
             timeout: float = DEFAULT_TIMEOUT,
             search: Sequence[str | os.PathLike] = (),
             sandbox: bool | None = None,
             source_environment: bool = True) -> HookResult:
    """Run ``<element>/<phase>.d/<hook>`` once and report what it did.

    ``root`` is a ``FakeTargetRoot`` (or a directory); ``stubs`` puts recording
    commands first on PATH; ``env`` adds or overrides variables (e.g.
    ``{"DIB_RELEASE": "trixie"}``). ``sandbox`` defaults to bubblewrap for every
    phase when it is installed, and is required for chroot phases.
    A hook still running after ``timeout`` seconds is killed; the result then
    has ``timed_out`` set, exit code 124 and says so in ``output``.
    """
    if phase.endswith(".d"):
        phase = phase[:-2]
    if phase not in HOOK_PHASE_NAMES:
        raise HarnessError(f"unknown phase '{phase}'; phases are "
                           f"{', '.join(HOOK_PHASE_NAMES)}")
    element_dir = find_element_dir(element, search=search)
    hook_path = element_dir / f"{phase}.d" / hook
    if not hook_path.is_file():
        raise HarnessError(f"element '{element_dir.name}' has no hook {phase}.d/{hook}",
                           hint=f"expected the file {hook_path}")
    if not os.access(hook_path, os.X_OK):
        raise HarnessError(f"hook {hook_path} is not executable, so a build would skip it",
                           hint=f"chmod +x {hook_path}")
    root_dir = Path(os.fspath(root)).resolve()
    if not root_dir.is_dir():
        raise HarnessError(f"fake root '{root_dir}' is not a directory")
    in_chroot = phase in CHROOT_PHASES
    if sandbox is None:
        sandbox = in_chroot or bwrap_path() is not None
    if in_chroot and not sandbox:
        raise HarnessError(f"hooks of the {phase} phase run inside the image and need "
                           "the sandbox; sandbox=False is only for host phases")
    bwrap = require_bwrap() if sandbox else None

    work = Path(tempfile.mkdtemp(prefix="dib-hooktest-"))
    try:
        hooks_copy = work / "hooks"
        runs_as = _hooks_tree(element_dir, hooks_copy, phase, hook,
                              source_environment=source_environment)
        if in_chroot:
            hooks_dir = IN_TARGET
            root_seen = None
            stubs_bin = f"{SANDBOX_STUB_BASE}/bin" if stubs else None
        else:
            hooks_dir = str(hooks_copy)
            root_seen = str(root_dir)
            stubs_bin = str(stubs.bin_dir) if stubs else None
        environment = hook_environment(phase=phase, element=element_dir.name,
                                       hooks_dir=hooks_dir, root=root_seen,
                                       stubs_bin=stubs_bin, extra=env,
                                       in_chroot=in_chroot)
        inner = [f"{hooks_dir}/{RUN_PARTS}", f"{hooks_dir}/{phase_of(phase).directory}"]
        created = _mountpoints_to_clean(root_dir) if in_chroot else []
        if bwrap is None:
            argv, cwd = inner, str(root_dir)
        elif in_chroot:
            argv, cwd = _chroot_sandbox(bwrap, root_dir, hooks_copy, stubs) + inner, None
        else:
            keep = _element_dirs(element_dir, search, environment)
            argv, cwd = _host_sandbox(bwrap, root_dir, work, stubs, keep) + inner, None
        if in_chroot:
            _ensure_top_links(root_dir)
        try:
            result = _execute(argv, environment, cwd, stdin, timeout)
        finally:
            for path in created:
                _remove_mountpoint(path)
        result.output = _hook_part(result.output, runs_as)
        _check_hook_ran(result, f"{inner[-1]}/{runs_as}")
        result.argv = argv
        if stubs is not None:
            result.calls = stubs.calls()
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _hooks_tree(element_dir: Path, target: Path, phase: str, hook: str, *,
                source_environment: bool) -> str:
    """A private TMP_HOOKS_PATH for one run (hooks may write into it): the
    element's files and DIB's shell library merged as a build merges them,
    and dib-run-parts, which finds only ``hook`` to run in ``phase``.d.
    Returns the name dib-run-parts runs it under.

    dib-run-parts sits at the top, where DIB itself puts it, rather than in
    bin/ with dib's other helper commands: the harness leaves those out, so a
    hook sees in bin/ only what its element brings (and a test's stubs)."""
    element = Element(element_dir.name, element_dir)
    hooktree.add_shell_library(shipped_hooks_dir(), target)
    hooktree.add_elements([element], target)
    shutil.copy2(shipped_hooks_dir() / RUN_PARTS, target / RUN_PARTS)
    name = _link_install_type_hook(target / f"{phase}.d", hook)
    for other in Element(element.name, target).hooks(phase):
        if other.runs and other.name != name:
            _stop_running(other.path)
    if not source_environment:
        _remove(target / "environment.d")
    return name


def _link_install_type_hook(phase_dir: Path, hook: str) -> str:
    """A hook in a subdirectory (``install.d/<element>-<type>-install/40-x``)
    runs in a build through the link the install-types element makes in the
    phase directory; make the same link."""
    relative = Path(hook)
    if len(relative.parts) == 1:
        return hook
    link = phase_dir / relative.name
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(relative)
    return relative.name


def _stop_running(path: Path) -> None:
    """Make dib-run-parts skip a hook of the copy. A regular file keeps its
    text (another hook may source it); a link is removed rather than changed,
    since changing its mode would change the file it points to."""
    if path.is_symlink():
        path.unlink()
    else:
        path.chmod(path.stat().st_mode & ~0o111)


def _remove(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _hook_part(output: str, hook: str) -> str:
    """The output without what dib-run-parts prints once the hook has ended
    (its verdict on the hook and its timing table): one hook needs no table,
    and ``output`` then ends with what the hook itself printed."""
    lines = output.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines)
              if line.startswith(f"{RUN_PARTS} -") and "PROFILING" in line]
    if len(starts) < 2:
        return output
    first, last = starts[-2], starts[-1]
    verdicts = (f"{RUN_PARTS} {hook} completed", f"{RUN_PARTS} {hook} failed with exit")
    if first > 0 and lines[first - 1].startswith(verdicts):
        first -= 1
    return "".join(lines[:first] + lines[last + 1:])


def _check_hook_ran(result: HookResult, shown_path: str) -> None:
    """A hook that passes without having run would be the worst kind of test
    result. dib-run-parts says when it starts a hook; if it exited 0 without
    saying so, a stub must have stood in for a command it uses itself."""
    if result.exit_code == 0 and f"Running {shown_path}\n" not in result.output:
        raise HarnessError(
            f"dib-run-parts exited 0 without running {shown_path}",
            hint="do not stub the commands dib-run-parts itself uses (find, sort, date, "
                 "mktemp, rm)")


def _as_root() -> list[str]:
    """bubblewrap options that make an ordinary user uid and gid 0 in the
    sandbox, as every hook is in a build (a rootless one too): ``chown
    root:root``, ``id -u`` and a lookup of the caller in the fake root's
    passwd then behave as they do there. Root needs none."""
    if os.geteuid() == 0:
        return []
    return ["--unshare-user", "--uid", "0", "--gid", "0"]


def _chroot_sandbox(bwrap: str, root: Path, hooks: Path, stubs: StubCommands | None
                    ) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--unshare-all", *_as_root(), "--new-session",
            "--bind", str(root), "/", "--ro-bind", "/usr", "/usr"]
    for name in _HOST_TOP:
        host = Path("/") / name
        if host.is_dir() and not host.is_symlink():
            argv += ["--ro-bind", str(host), f"/{name}"]
    for rel in _WRITABLE_USR:
        # An interpreter installed under /usr/local must stay visible.
        if (Path("/") / rel).is_dir() and not sys.base_prefix.startswith(f"/{rel}"):
            (root / rel).mkdir(parents=True, exist_ok=True)
            argv += ["--bind", str(root / rel), f"/{rel}"]
    # The stub interpreter (and anything else outside /usr) must be visible.
    interpreter_prefix = Path(sys.base_prefix)
    if stubs is not None and not str(interpreter_prefix).startswith("/usr") \
            and not os.access("/usr/bin/python3", os.X_OK):
        argv += ["--ro-bind", str(interpreter_prefix), str(interpreter_prefix)]
    argv += ["--proc", "/proc", "--dev", "/dev",
             "--ro-bind", str(hooks), IN_TARGET]
    if stubs is not None:
        argv += ["--bind", str(stubs.base_dir), SANDBOX_STUB_BASE]
    argv += ["--chdir", "/", "--"]
    return argv


def _element_dirs(element_dir: Path, search: Sequence[str | os.PathLike],
                  environment: Mapping[str, str]) -> list[Path]:
    """Where elements live, as a host-side hook may read them (another
    element's files, through IMAGE_ELEMENT_YAML and friends): the element's
    own search directory, the harness's search path, ELEMENTS_PATH, and the
    directory the tests run from (a hook a test writes may source files of
    the element beside it)."""
    given = [Path.cwd(), element_dir.parent, *(Path(p) for p in search),
             *(Path(p) for p in environment.get("ELEMENTS_PATH", "").split(":") if p)]
    return list(dict.fromkeys(p.resolve() for p in given if p.is_dir()))


def _host_sandbox(bwrap: str, root: Path, work: Path, stubs: StubCommands | None,
                  keep: Sequence[Path] = ()) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--unshare-all", *_as_root(), "--new-session",
            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
    # The private /tmp and /var/tmp must not hide element trees kept there
    # (a checkout under /var/tmp, a test's temporary elements).
    for path in keep:
        if path not in (Path("/tmp"), Path("/var/tmp")) and \
                (path.is_relative_to("/tmp") or path.is_relative_to("/var/tmp")):
            argv += ["--ro-bind", str(path), str(path)]
    # Writable: the fake root, the hooks copy (TMP_HOOKS_PATH) and the stub log.
    argv += ["--bind", str(root), str(root), "--bind", str(work), str(work)]
    if stubs is not None:
        argv += ["--ro-bind", str(stubs.bin_dir), str(stubs.bin_dir),
                 "--bind", str(stubs.log_dir), str(stubs.log_dir)]
    argv += ["--chdir", str(root), "--"]
    return argv


def _mountpoints_to_clean(root: Path) -> list[Path]:
    """Mount points bubblewrap will create inside the fake root that were not
    there before; they are removed again after the run."""
    out = []
    for rel in ("proc", "dev", "usr", "tmp/in_target.d", SANDBOX_STUB_BASE.lstrip("/"),
                "tmp", "usr/lib", "usr/lib/systemd", *_WRITABLE_USR):
        path = root / rel
        if not os.path.lexists(path):
            out.append(path)
    # Deepest first.
    return sorted(out, key=lambda p: len(p.parts), reverse=True)


def _remove_mountpoint(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            # Only if still empty: never delete what a hook wrote.
            path.rmdir()
        elif path.is_file():
            if path.stat().st_size == 0:
                path.unlink()
    except OSError:
        pass


def _ensure_top_links(root: Path) -> None:
    """Give the fake root the host's /bin, /lib... symlinks (merged /usr)."""
    for name in _HOST_TOP:
        host = Path("/") / name
        mine = root / name
        if host.is_symlink() and not os.path.lexists(mine):
            mine.symlink_to(os.readlink(host))


def _execute(argv: list[str], env: dict[str, str], cwd: str | None,
             stdin: str | bytes | None, timeout: float) -> HookResult:
    if isinstance(stdin, str):
        stdin = stdin.encode()
    handle, log = tempfile.mkstemp(prefix="dib-hook-output-")
    os.close(handle)
    started = time.monotonic()
    try:
        try:
            code = runner.run(argv, check=False, env=env, cwd=cwd, input=stdin,
                              stdin=subprocess.DEVNULL, timeout=timeout, binary=True,
                              own_group=True, log_file=log, what="the hook").returncode
            timed_out = False
        except CommandTimeout:
            code, timed_out = TIMEOUT_EXIT, True
        output = Path(log).read_bytes().decode("utf-8", "replace")
    finally:
        os.unlink(log)
    if timed_out:
        output += f"\nhook timed out after {_fmt_seconds(timeout)} s\n"
    elif code < 0:
        output += f"\nhook killed by signal {-code}\n"
        code = 128 - code
    return HookResult(code, output, [], time.monotonic() - started, timed_out)


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# --------------------------------------------------------------------------- python hooks

def load_python_hook(path: str | os.PathLike, *, name: str | None = None
                     ) -> types.ModuleType:
    """Import a Python hook file (usually without a ``.py`` suffix) as a module.

    Its top level runs (``if __name__ == "__main__"`` blocks do not), so its
    functions can be called and patched directly.
    """
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"python hook '{path}' does not exist")
    module_name = name or "dib_hook_" + "".join(
        c if c.isalnum() else "_" for c in f"{path.parent.name}_{path.name}")
    loader = importlib.machinery.SourceFileLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, str(path), loader=loader)
    if spec is None:
        raise HarnessError(f"cannot import python hook '{path}'")
    module = importlib.util.module_from_spec(spec)
    try:
        loader.exec_module(module)
    except SyntaxError as exc:
        raise HarnessError(f"python hook '{path}' has a syntax error at line "
                           f"{exc.lineno}: {exc.msg}") from None
    return module
