"""Fixtures for hook unit tests: a fake target root and recording stub commands.

Both are ``fixtures.Fixture`` subclasses, so they work with
``testtools.TestCase.useFixture`` and, through ``with``, in any test runner::

    with FakeTargetRoot() as root, StubCommands(["systemctl"]) as stubs:
        ...
        stubs.calls("systemctl")   # [CallRecord(argv=["systemctl", ...], ...)]
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import fixtures

from dib.errors import DibError

# Commands a typical hook calls that must never really run in a unit test.
DEFAULT_STUBS = (
    "apt-get", "apt-mark", "dpkg", "dpkg-divert", "dpkg-reconfigure", "systemctl",
    "install-packages", "curl", "wget", "update-initramfs", "update-grub", "grub-install",
    "useradd", "usermod", "groupadd", "chpasswd", "locale-gen", "mount", "umount", "sudo",
)

# What a command name may look like: no slash, no whitespace, no leading dash.
COMMAND_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9_.+:@-]*$")

# Top-level directories of a minimal root.
ROOT_LAYOUT = ("etc", "etc/default", "etc/apt/sources.list.d", "root", "tmp", "usr/bin",
               "usr/sbin", "usr/lib", "usr/local/bin", "usr/share", "var/lib/dpkg",
               "var/log", "var/cache", "var/tmp", "home", "opt", "run", "srv", "boot",
               "dev", "proc", "sys", "mnt")
# Merged-/usr symlinks, as on current Debian and Ubuntu.
ROOT_SYMLINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib"}

# Where the stubs (bin/) and their call log (log/) are seen inside a sandbox.
SANDBOX_STUB_BASE = "/.dib-testing"


class HarnessError(DibError):
    """The test harness was asked for something it cannot do."""


# --------------------------------------------------------------------------- fake root

class FakeTargetRoot(fixtures.Fixture):
    """A temporary directory laid out like a minimal root filesystem.

    ``path`` is the directory (a ``Path``). Helpers take paths relative to the
    root, with or without a leading ``/``: ``write("/etc/hostname", "x\\n")``.
    """

    def __init__(self, *, parent: str | os.PathLike | None = None,
                 layout: Iterable[str] = ROOT_LAYOUT,
                 files: Mapping[str, str | bytes] | None = None) -> None:
        super().__init__()
        self._parent = parent
        self._layout = tuple(layout)
        self._files = dict(files or {})
        self.path: Path = Path()

    def _setUp(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="dib-fakeroot-", dir=self._parent))
        self.addCleanup(_rmtree, self.path)
        for directory in self._layout:
            (self.path / directory).mkdir(parents=True, exist_ok=True)
        (self.path / "tmp").chmod(0o1777)
        links = dict(ROOT_SYMLINKS)
        for name in ("lib32", "lib64", "libx32"):
            # Mirror the host's, so host binaries find their loader in a sandbox.
            if os.path.islink(f"/{name}"):
                links[name] = os.readlink(f"/{name}")
        for name, target in links.items():
            if not os.path.lexists(self.path / name):
                (self.path / name).symlink_to(target)
        for name, content in self._files.items():
            self.write(name, content)

    # Paths -----------------------------------------------------------------
    def __fspath__(self) -> str:
        return str(self.path)

    def join(self, relative: str | os.PathLike) -> Path:
        """The host path of ``relative`` inside the root (``/`` means the root)."""
        rel = os.fspath(relative).lstrip("/")
        return self.path / rel if rel else self.path

    # Files -----------------------------------------------------------------
    def write(self, relative: str | os.PathLike, content: str | bytes = "",
              *, mode: int | None = None) -> Path:
        target = self.join(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        if mode is not None:
            target.chmod(mode)
        return target

    def read(self, relative: str | os.PathLike) -> str:
        return self.join(relative).read_text()

    def read_bytes(self, relative: str | os.PathLike) -> bytes:
        return self.join(relative).read_bytes()

    def exists(self, relative: str | os.PathLike) -> bool:
        return os.path.lexists(self.join(relative))

    def mode(self, relative: str | os.PathLike) -> int:
        """Permission bits, e.g. ``0o644``."""
        return stat.S_IMODE(self.join(relative).lstat().st_mode)

    def mkdir(self, relative: str | os.PathLike, *, mode: int | None = None) -> Path:
        target = self.join(relative)
        target.mkdir(parents=True, exist_ok=True)
        if mode is not None:
            target.chmod(mode)
        return target

    def listdir(self, relative: str | os.PathLike = "/") -> list[str]:
        return sorted(os.listdir(self.join(relative)))

    def snapshot(self) -> dict[str, bytes | None]:
        """Every file in the root → its content (``None`` for directories,
        the link target for symlinks); compare two to see what a hook changed."""
        out: dict[str, bytes | None] = {}
        for dirpath, dirnames, filenames in os.walk(self.path):
            for name in dirnames + filenames:
                full = Path(dirpath, name)
                rel = "/" + str(full.relative_to(self.path))
                if full.is_symlink():
                    out[rel] = b"-> " + os.readlink(full).encode()
                elif full.is_dir():
                    out[rel] = None
                else:
                    out[rel] = full.read_bytes()
        return out

    def add_dpkg_package(self, name: str, version: str = "1.0", *,
                         status: str = "install ok installed", arch: str = "all") -> None:
        """Record a package in ``var/lib/dpkg/status`` (as dpkg-query reads it)."""
        entry = (f"Package: {name}\nStatus: {status}\nArchitecture: {arch}\n"
                 f"Version: {version}\n\n")
        status_file = self.join("var/lib/dpkg/status")
        status_file.parent.mkdir(parents=True, exist_ok=True)
        with status_file.open("a") as handle:
            handle.write(entry)


# --------------------------------------------------------------------------- stubs

@dataclass(frozen=True)
class CallRecord:
    """One run of a stub command."""

    name: str
    argv: list[str]
    stdin: str
    env: dict[str, str] = field(repr=False)
    cwd: str = ""

    @property
    def args(self) -> list[str]:
        """argv without the command name."""
        return self.argv[1:]


@dataclass
class StubSpec:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    script: str | None = None   # a /bin/sh body run after the call is recorded
    read_stdin: bool = True

    def as_json(self) -> dict:
        return {"stdout": self.stdout, "stderr": self.stderr, "exit_code": self.exit_code,
                "script": self.script, "read_stdin": self.read_stdin}


# The program every stub runs. It is data written into each stub file, run by
# the host's /usr/bin/python3 (visible in the sandbox, which binds /usr).
_STUB_PROGRAM = r'''
import fcntl, json, os, stat, sys
NAME = %(name)r
HERE = os.path.dirname(os.path.abspath(__file__))
LOG = os.path.join(os.path.dirname(HERE), "log")
with open(os.path.join(HERE, ".config", NAME + ".json")) as handle:
    spec = json.load(handle)
data = b""
if spec.get("read_stdin", True):
    try:
        mode = os.fstat(0).st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode):
            data = sys.stdin.buffer.read(1 << 20)
    except (OSError, ValueError):
        data = b""
record = {"name": NAME, "argv": [NAME] + sys.argv[1:],
          "stdin": data.decode("utf-8", "replace"), "env": dict(os.environ),
          "cwd": os.getcwd()}
with open(os.path.join(LOG, "calls.jsonl"), "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    handle.write(json.dumps(record) + "\n")
sys.stdout.write(spec.get("stdout") or "")
sys.stdout.flush()
sys.stderr.write(spec.get("stderr") or "")
sys.stderr.flush()
if spec.get("script"):
    import subprocess
    proc = subprocess.run(["/bin/sh", "-c", spec["script"], NAME] + sys.argv[1:],
                          input=data)
    sys.exit(proc.returncode if spec.get("exit_code", 0) == 0 else spec["exit_code"])
sys.exit(spec.get("exit_code", 0))
'''


def stub_interpreter() -> str:
    """The Python that runs stubs: the system one (inside /usr) when present."""
    for candidate in ("/usr/bin/python3",):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


class StubCommands(fixtures.Fixture):
    """Stub executables, first on ``PATH``, that record every call.

    ``commands`` is an iterable of names, or a mapping of name → ``StubSpec``
    (or a dict of its fields, or an int exit status). With no argument the
    commands in ``DEFAULT_STUBS`` are stubbed. Each call is recorded (argv,
    stdin, environment, cwd) as a JSON line; ``calls(name)`` reads them back.

    With ``require_real=True`` every stubbed name must exist on the host, which
    catches a typo such as ``systemct`` in a test. ``patch_path=True`` also puts
    the stubs first on this process's ``PATH`` for the fixture's lifetime.
    """

    def __init__(self, commands: Iterable[str] | Mapping[str, object] | None = None, *,
                 require_real: bool = False, patch_path: bool = False) -> None:
        super().__init__()
        if commands is None:
            commands = DEFAULT_STUBS
        if isinstance(commands, Mapping):
            self._initial = dict(commands)
        else:
            self._initial = {name: None for name in commands}
        self.require_real = require_real
        self._patch_path = patch_path
        for name in self._initial:
            self._check_name(name)
        self.base_dir: Path = Path()
        self.bin_dir: Path = Path()
        self.log_dir: Path = Path()
        self.specs: dict[str, StubSpec] = {}

    def _check_name(self, name: object) -> None:
        if not isinstance(name, str) or not COMMAND_NAME.match(name):
            raise HarnessError(f"cannot stub {name!r}: not a valid command name",
                               hint="use a bare command name such as 'apt-get' "
                                    "(no slashes, spaces or leading dash)")
        if self.require_real and shutil.which(
                name, path=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
        ) is None:
            raise HarnessError(f"cannot stub '{name}': no such command on this host "
                               "(require_real=True)",
                               hint="check the spelling, or pass require_real=False")

    def _setUp(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="dib-stubs-"))
        self.addCleanup(_rmtree, base)
        self.base_dir = base
        self.bin_dir = base / "bin"
        self.log_dir = base / "log"
        (self.bin_dir / ".config").mkdir(parents=True)
        self.log_dir.mkdir()
        self.log_dir.chmod(0o777)
        (self.log_dir / "calls.jsonl").touch()
        (self.log_dir / "calls.jsonl").chmod(0o666)
        for name, spec in self._initial.items():
            self._install(name, _as_spec(spec))
        if self._patch_path:
            self.useFixture(fixtures.EnvironmentVariable(
                "PATH", f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"))

    # Configuring ----------------------------------------------------------
    def add(self, name: str, *, stdout: str = "", stderr: str = "", exit_code: int = 0,
            script: str | None = None, read_stdin: bool = True) -> None:
        """Stub ``name`` (or change how an existing stub behaves)."""
        self._check_name(name)
        self._install(name, StubSpec(stdout, stderr, exit_code, script, read_stdin))

    configure = add

    def _install(self, name: str, spec: StubSpec) -> None:
        self.specs[name] = spec
        (self.bin_dir / ".config" / f"{name}.json").write_text(json.dumps(spec.as_json()))
        program = self.bin_dir / name
        if not program.exists():
            text = (f"#!{stub_interpreter()} -IS\n# stub written by dib.testing\n"
                    + _STUB_PROGRAM % {"name": name})
            program.write_text(text)
            program.chmod(0o755)

    @property
    def names(self) -> list[str]:
        return sorted(self.specs)

    # Reading ---------------------------------------------------------------
    def calls(self, name: str | None = None) -> list[CallRecord]:
        """Recorded calls, oldest first; only those of ``name`` if given."""
        out = []
        log = self.log_dir / "calls.jsonl"
        if not log.exists():
            return out
        for line in log.read_text().splitlines():
            if not line.strip():
                continue
            data = json.loads(line)
            if name is None or data["name"] == name:
                out.append(CallRecord(data["name"], data["argv"], data["stdin"],
                                      data["env"], data.get("cwd", "")))
        return out

    def reset(self) -> None:
        """Forget every recorded call."""
        (self.log_dir / "calls.jsonl").write_text("")

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment with the stubs first on PATH (for running things yourself)."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"
        return env


def _as_spec(value: object) -> StubSpec:
    if value is None:
        return StubSpec()
    if isinstance(value, StubSpec):
        return value
    if isinstance(value, bool):
        raise HarnessError(f"bad stub specification {value!r}")
    if isinstance(value, int):
        return StubSpec(exit_code=value)
    if isinstance(value, Mapping):
        try:
            return StubSpec(**value)
        except TypeError as exc:
            raise HarnessError(f"bad stub specification {dict(value)!r}: {exc}",
                               hint="keys are stdout, stderr, exit_code, script, "
                                    "read_stdin") from None
    raise HarnessError(f"bad stub specification {value!r}",
                       hint="give None, an exit status, a dict or a StubSpec")


def _rmtree(path: Path) -> None:
    def retry(func, failed, _exc_info) -> None:
        try:
            os.chmod(os.path.dirname(failed), 0o700)
            func(failed)
        except OSError:
            pass
    shutil.rmtree(path, onerror=retry)
