"""Running one hook of one element, fast, without root and without touching the host.

``run_hook(element, phase, hook, root=..., stubs=...)`` runs the hook the way a
build would (DIB's environment, the element's ``environment.d`` sourced first
in ``sort -n`` order) and returns a ``HookResult``.

Where it runs:

* chroot phases (pre-install, install, post-install, finalise) run in a
  bubblewrap sandbox whose ``/`` is the fake root; the host's ``/usr`` is bound
  read-only so host tools are there, except ``/usr/local`` and
  ``/usr/lib/systemd/system``, which are the fake root's own. Anything the hook
  writes (``/etc/foo``, ``/usr/local/bin/foo``) lands in the fake root. The element is at ``/tmp/in_target.d`` as in a build.
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
import signal
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from dib.config.build import host_arch
from dib.elements.discovery import shipped_hooks_dir
from dib.elements.model import environment_files
from dib.elements.phases import HOOK_PHASE_NAMES, HOOK_PHASES
from dib.runtime.hooktree import LIB_DIR
from dib.testing.fixtures import (SANDBOX_STUB_BASE, CallRecord, FakeTargetRoot,
                                  HarnessError, StubCommands)

CHROOT_PHASES = tuple(p.name for p in HOOK_PHASES if p.in_chroot)
HOST_PHASES = tuple(p.name for p in HOOK_PHASES if not p.in_chroot)
IN_TARGET = "/tmp/in_target.d"
DEFAULT_TIMEOUT = 30.0
TIMEOUT_EXIT = 124
BWRAP_PACKAGE = "bubblewrap"
# Host top-level directories a sandboxed hook needs besides /usr.
_HOST_TOP = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Where image hooks install things under /usr: the fake root's own directories
# are bound over the host's read-only /usr there, so such hooks can be tested.
_WRITABLE_USR = ("usr/local", "usr/lib/systemd/system")

# The runner inside the sandbox: dib-run-parts' semantics for one hook. It
# sources each environment file (given as arguments before "--") with xtrace on,
# under set -eu -o pipefail, then replaces itself with the hook.
_RUNNER = r'''
set -eu
set -o pipefail
while [ "$1" != "--" ]; do
    echo "dib-run-parts Sourcing environment file $1" >&2
    _dib_xtrace=$(set +o | grep xtrace)
    set -o xtrace
    source "$1"
    $_dib_xtrace
    shift
done
shift
echo "dib-run-parts Running $1" >&2
exec "$@"
'''


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
        # A private copy of the element: hooks may write into TMP_HOOKS_PATH.
        hooks_copy = work / "hooks"
        shutil.copytree(element_dir, hooks_copy, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _add_shell_library(hooks_copy)
        env_files = environment_files(hooks_copy) if source_environment else []
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

        def seen(path: Path) -> str:
            return f"{IN_TARGET}/{path.relative_to(hooks_copy)}" if in_chroot else str(path)

        inner = ["/bin/bash", "-c", _RUNNER, "dib-run-parts",
                 *[seen(p) for p in env_files], "--", seen(hooks_copy / f"{phase}.d" / hook)]
        created = _mountpoints_to_clean(root_dir) if in_chroot else []
        if bwrap is None:
            argv, cwd = inner, str(root_dir)
        elif in_chroot:
            argv, cwd = _chroot_sandbox(bwrap, root_dir, hooks_copy, stubs) + inner, None
        else:
            argv, cwd = _host_sandbox(bwrap, root_dir, work, stubs) + inner, None
        if in_chroot:
            _ensure_top_links(root_dir)
        try:
            result = _execute(argv, environment, cwd, stdin, timeout)
        finally:
            for path in created:
                _remove_mountpoint(path)
        result.argv = argv
        if stubs is not None:
            result.calls = stubs.calls()
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _add_shell_library(hooks_copy: Path) -> None:
    """$_LIB as a build gives it: DIB's shell library beside the hooks."""
    library = shipped_hooks_dir() / LIB_DIR
    if library.is_dir() and not (hooks_copy / LIB_DIR).exists():
        shutil.copytree(library, hooks_copy / LIB_DIR,
                        ignore=shutil.ignore_patterns("__pycache__"))


def _chroot_sandbox(bwrap: str, root: Path, hooks: Path, stubs: StubCommands | None
                    ) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--unshare-all", "--new-session",
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


def _host_sandbox(bwrap: str, root: Path, work: Path, stubs: StubCommands | None
                  ) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--unshare-all", "--new-session",
            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
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
    start = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.PIPE if stdin is not None
                                else subprocess.DEVNULL,
                                start_new_session=True)
        timed_out = False
        try:
            proc.communicate(input=stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        seconds = time.monotonic() - start
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    code = proc.returncode
    if timed_out:
        code = TIMEOUT_EXIT
        output += f"\nhook timed out after {_fmt_seconds(timeout)} s\n"
    elif code is not None and code < 0:
        output += f"\nhook killed by signal {-code}\n"
        code = 128 - code
    return HookResult(code, output, [], seconds, timed_out)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


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
