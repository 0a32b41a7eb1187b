"""Commands run inside a booted guest (``dib boot --exec``), two ways in.

``serial`` (the default) needs nothing in the image beyond systemd 252 or
newer (Debian 12, Ubuntu 24.04, EL9) and a getty on the serial console, which
every ``vm`` image has. qemu hands the guest a ``tmpfiles.extra`` system
credential in an SMBIOS type 11 string; systemd-tmpfiles, early in the boot,

* appends a user ``dib-exec`` with uid 0, an empty password and its home in
  ``/run/dib-exec`` to ``/etc/passwd`` (login's PAM stack accepts an empty
  password: Debian's, Ubuntu's and Fedora's ``pam_unix`` have ``nullok``),
* writes that home's ``.profile``: the script that runs the commands.

The host types ``dib-exec`` at the ``login:`` prompt on ttyS0. The login
shell waits for systemd to finish starting (``systemctl is-system-running
--wait``), runs each command with ``sh -c`` (stdin ``/dev/null``, stderr into
stdout) and writes the results, base64 between marker lines, to the second
serial port (ttyS1), which qemu writes to a file: kernel messages on the
console cannot garble them. The image file is never changed (``-snapshot``);
only the running guest has the extra user.

``ssh`` is for images without such a systemd but with sshd (cloud images
with cloud-init): a key pair (generated, or ``--ssh-key``) goes in as the
``ssh.authorized_keys.root`` credential and, for cloud-init, into the NoCloud
seed's user-data (``disable_root: false`` plus the key); the host connects to
root through a qemu user-network port forward and runs each command with
``sh -c``.
"""
from __future__ import annotations

import base64
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from dib import runner
from dib.errors import BootCheckError, DibError

EXEC_USER = "dib-exec"
EXEC_HOME = "/run/dib-exec"
EXEC_TTY = "/dev/ttyS1"
LOGIN_METHODS = ("serial", "ssh")
#: the longest the guest waits for systemd to settle before running commands
SETTLE_SECONDS = 120
SSH_TOOLS = [("ssh", "openssh-client"), ("ssh-keygen", "openssh-client")]


class GuestExecError(BootCheckError):
    """Commands could not be run in the guest."""


@dataclass
class ExecResult:
    """One ``--exec`` command: ``status`` is None when it never finished."""

    command: str
    status: int | None
    output: str

    @property
    def ok(self) -> bool:
        return self.status == 0

    def to_dict(self) -> dict:
        return {"command": self.command, "status": self.status, "output": self.output}


# -- serial: the login the tmpfiles.extra credential adds ----------------------


def tmpfiles_escape(text: str) -> str:
    """``text`` as a tmpfiles.d argument: C escapes resolved, specifiers expanded."""
    return text.replace("\\", "\\\\").replace("%", "%%").replace("\n", "\\n") \
        .replace("\t", "\\t")


def exec_script(commands: Sequence[str], nonce: str, settle: int = SETTLE_SECONDS,
                tty: str = EXEC_TTY) -> str:
    """The login shell's .profile: run ``commands``, report on ``tty``; wait
    up to ``settle`` seconds for systemd first (not at all when 0)."""
    lines = [
        f"n={nonce}",
        'echo "$n start"',
        f"exec 3>{shlex.quote(tty)}",
        # raw: no newline translation on the way out
        f"stty -F {shlex.quote(tty)} raw -echo 2>/dev/null",
        "state=",
    ]
    if settle > 0:
        lines += [
            "if command -v systemctl >/dev/null 2>&1; then",
            f"    state=$(timeout {int(settle)} systemctl is-system-running --wait "
            "2>/dev/null)",
            "fi",
        ]
    lines += [
        'echo "$n state ${state:-unknown}" >&3',
        "dib_exec() {",
        '    sh -c "$2" </dev/null >"$HOME/output" 2>&1',
        "    rc=$?",
        '    echo "$n begin $1" >&3',
        '    base64 <"$HOME/output" >&3',
        '    echo "$n end $1 $rc" >&3',
        "}",
    ]
    lines += [f"dib_exec {i} {shlex.quote(cmd)}" for i, cmd in enumerate(commands)]
    lines += ['echo "$n done" >&3', "exec 3>&-", 'echo "$n done"', "exit 0", ""]
    return "\n".join(lines)


def serial_login_tmpfiles(commands: Sequence[str], nonce: str,
                          settle: int = SETTLE_SECONDS) -> str:
    """The ``tmpfiles.extra`` credential that makes the ``dib-exec`` login."""
    passwd = f"{EXEC_USER}::0:0:dib boot --exec:{EXEC_HOME}:/bin/sh\n"
    script = exec_script(commands, nonce, settle)
    return "\n".join([
        f"d {EXEC_HOME} 0700 root root -",
        f"f {EXEC_HOME}/.profile 0600 root root - {tmpfiles_escape(script)}",
        f"w+ /etc/passwd - - - - {tmpfiles_escape(passwd)}",
        "",
    ])


@dataclass
class ExecOutput:
    state: str
    results: list[ExecResult]
    done: bool


def parse_exec_output(data: bytes, commands: Sequence[str], nonce: str) -> ExecOutput:
    """Read what the guest wrote to ttyS1; a command without its end line
    (the guest stopped, or time ran out) has status None."""
    state, done = "", False
    results = [ExecResult(cmd, None, "") for cmd in commands]
    current: int | None = None
    chunks: list[bytes] = []
    prefix = nonce.encode() + b" "
    for raw in data.replace(b"\r", b"").split(b"\n"):
        if raw.startswith(prefix):
            word, _, rest = raw[len(prefix):].decode(errors="replace").partition(" ")
            if word == "state":
                state = rest.strip()
            elif word == "begin" and rest.strip().isdigit():
                current, chunks = int(rest), []
            elif word == "end" and current is not None:
                index, _, status = rest.partition(" ")
                if index.isdigit() and int(index) == current < len(results) and \
                        status.strip().lstrip("-").isdigit():
                    results[current].status = int(status)
                    results[current].output = _decode(b"".join(chunks))
                current = None
            elif word == "done":
                done = True
        elif current is not None:
            chunks.append(raw.strip())
    return ExecOutput(state or "unknown", results, done)


def _decode(b64: bytes) -> str:
    try:
        return base64.b64decode(b64, validate=False).decode(errors="replace")
    except ValueError:
        return "(output could not be decoded)"


# -- ssh ------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ssh_key_pair(directory: Path, given: Path | None = None) -> tuple[Path, str]:
    """(private key, public key text): ``given`` and ``given``.pub, or a new
    ed25519 pair in ``directory``."""
    runner.require_tools(SSH_TOOLS, "--exec with --login ssh")
    if given is not None:
        given = Path(given)
        public = given.with_name(given.name + ".pub")
        for path in (given, public):
            if not path.is_file():
                raise GuestExecError(f"--ssh-key: {path} does not exist",
                                     hint="give the private key; its public half must be "
                                          "beside it as KEY.pub")
        return given, public.read_text().strip()
    key = Path(directory) / "id_ed25519"
    runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dib-boot",
                "-f", str(key)], what="ssh-keygen")
    return key, key.with_name(key.name + ".pub").read_text().strip()


def ssh_argv(key: Path, port: int, command: str) -> list[str]:
    return ["ssh", "-i", str(key), "-p", str(port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
            "root@127.0.0.1", command]


def remote_command(command: str) -> str:
    """What ssh asks the guest's shell to run: the command as --exec runs it
    over the serial console too."""
    return f"sh -c {shlex.quote(command)} </dev/null 2>&1"


def run_over_ssh(commands: Sequence[str], key: Path, port: int, deadline: float,
                 alive: Callable[[], bool]) -> ExecOutput:
    """Wait until root can log in, let systemd settle, run ``commands``."""
    while True:
        probe = _ssh(key, port, "true", deadline, quiet=True)
        if probe.ok:
            break
        last = (probe.output.strip().splitlines() or [""])[-1]
        if time.monotonic() >= deadline or not alive():
            why = "time ran out" if alive() else "the guest stopped"
            raise GuestExecError(f"no SSH login as root on the guest ({why})"
                                 + (f": {last}" if last else ""),
                                 hint="the image needs sshd; a cloud-init image reads the key "
                                      "from the seed --login ssh attaches, others need "
                                      "systemd 252+ for the ssh.authorized_keys.root "
                                      "credential")
        time.sleep(2)
    settle = _ssh(key, port, f"timeout {SETTLE_SECONDS} systemctl is-system-running --wait",
                  deadline)
    state = settle.output.strip().splitlines()[-1:] or ["unknown"]
    results = [_ssh(key, port, remote_command(command), deadline, label=command)
               for command in commands]
    return ExecOutput(state[0], results, True)


def _ssh(key: Path, port: int, command: str, deadline: float, *, quiet: bool = False,
         label: str | None = None) -> ExecResult:
    """One ssh run bounded by ``deadline`` (a ``quiet`` probe by a minute at
    most); status None when time ran out."""
    label = label or command
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return ExecResult(label, None, "(not run: time ran out)")
    try:
        ran = runner.run(ssh_argv(key, port, command), check=False, what="ssh",
                         timeout=min(remaining, 60.0) if quiet else remaining)
    except DibError:
        return ExecResult(label, None, "(timed out)")
    return ExecResult(label, ran.returncode, ran.stdout + ran.stderr)


def check_login_method(login: str) -> None:
    if login not in LOGIN_METHODS:
        raise GuestExecError(f"unknown login method {login!r}",
                             hint=f"use one of: {', '.join(LOGIN_METHODS)}")
