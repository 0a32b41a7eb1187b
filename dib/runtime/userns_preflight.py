"""What a host lacks for builds without root, each with the command that fixes it.

The checks read files (``/etc/subuid``, ``/etc/subgid``, ``/proc/sys``, the
id-mapping helpers); ``Host`` says where, so tests point them at a fake tree.
Only the overlay check runs something: whether a kernel lets an unprivileged
user mount overlayfs in a user namespace is best learnt by trying.
"""
from __future__ import annotations

import os
import pwd
import stat
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dib import runner
from dib.errors import CommandError
from dib.runtime.userns import (SUBGID_FILE, SUBORDINATE_IDS, SUBUID_FILE, UserNamespaceError,
                                add_subids_command, available_ids, ranges_for, read_subids)

# The checks, in the order they are reported (``Finding.check`` is one of these).
SUBIDS = "subordinate ids"
HELPERS = "newuidmap and newgidmap"
USERNS = "user namespaces enabled"
APPARMOR = "AppArmor allows user namespaces"
OVERLAY = "overlay mounts in a user namespace"
CHECKS = (SUBIDS, HELPERS, USERNS, APPARMOR, OVERLAY)

# Capability numbers (linux/capability.h) and the file capability xattr layout.
CAP_SETGID = 6
CAP_SETUID = 7
_VFS_CAP_FLAGS_EFFECTIVE = 0x1
_CAPABILITY_XATTR = "security.capability"


@dataclass(frozen=True)
class Finding:
    check: str      # one of CHECKS
    problem: str    # what is missing
    fix: str        # the command (or change) that fixes it

    def __str__(self) -> str:
        return f"{self.problem}; fix: {self.fix}"


@dataclass(frozen=True)
class Host:
    """Where the checks look."""
    subuid: Path = SUBUID_FILE
    subgid: Path = SUBGID_FILE
    proc_sys: Path = Path("/proc/sys")
    # Tool name -> its path, or None when it is not installed; by default
    # found on PATH.
    helpers: dict[str, Path | None] = field(default_factory=dict)

    def helper(self, name: str) -> Path | None:
        if name in self.helpers:
            return self.helpers[name]
        found = runner.which(name)
        return Path(found) if found else None


def subid_findings(host: Host, user: str, uid: int, gid: int) -> list[Finding]:
    """Does the user have a range of 65536 ids of each kind?"""
    try:
        uid_ranges, gid_ranges = read_subids(host.subuid), read_subids(host.subgid)
    except UserNamespaceError as exc:
        return [Finding(SUBIDS, exc.message, exc.hint or "fix the file")]
    findings = []
    for kind, own, path, ranges in (("uids", uid, host.subuid, uid_ranges),
                                    ("gids", gid, host.subgid, gid_ranges)):
        have = available_ids(own, ranges_for(ranges, user, uid))
        if have < SUBORDINATE_IDS:
            findings.append(Finding(
                SUBIDS, f"user {user} has {have} subordinate {kind} in {path}, "
                        f"a rootless build needs {SUBORDINATE_IDS}",
                add_subids_command(user, uid_ranges, gid_ranges)))
    return findings


def capabilities_of(xattr: bytes) -> tuple[set[int], bool]:
    """The permitted capabilities in a ``security.capability`` value and
    whether they are effective at exec (struct vfs_cap_data, revisions 1-3:
    a magic/flags word, then permitted and inheritable words, low 32 bits
    first)."""
    if len(xattr) < 12:
        return set(), False
    magic, permitted_low = struct.unpack_from("<II", xattr)
    permitted = permitted_low
    if len(xattr) >= 20:
        permitted |= struct.unpack_from("<I", xattr, 12)[0] << 32
    caps = {bit for bit in range(64) if permitted >> bit & 1}
    return caps, bool(magic & _VFS_CAP_FLAGS_EFFECTIVE)


def helper_problem(name: str, mode: int, owner: int, xattr: bytes | None,
                   capability: int) -> str | None:
    """Why a newuidmap/newgidmap file cannot write maps (None when it can):
    it must be setuid root or carry ``capability`` as an effective file
    capability."""
    if not stat.S_ISREG(mode):
        return f"{name} is not a regular file"
    if owner == 0 and mode & stat.S_ISUID:
        return None
    if xattr is not None:
        caps, effective = capabilities_of(xattr)
        if capability in caps and effective:
            return None
    cap_name = {CAP_SETUID: "cap_setuid", CAP_SETGID: "cap_setgid"}[capability]
    return f"{name} is neither setuid root nor has the {cap_name} file capability"


def helper_findings(host: Host) -> list[Finding]:
    findings = []
    for name, capability in (("newuidmap", CAP_SETUID), ("newgidmap", CAP_SETGID)):
        path = host.helper(name)
        if path is None or not path.exists():
            findings.append(Finding(HELPERS, f"{name} is not installed",
                                    "apt-get install uidmap"))
            continue
        info = path.stat()
        problem = helper_problem(str(path), info.st_mode, info.st_uid, _xattr(path), capability)
        if problem is not None:
            findings.append(Finding(HELPERS, problem,
                                    f"chmod u+s {path} (or apt-get install --reinstall uidmap)"))
    return findings


def sysctl_findings(proc_sys: Path) -> list[Finding]:
    """User namespaces switched off by sysctl, or restricted by AppArmor."""
    findings = []
    max_namespaces = _sysctl(proc_sys, "user.max_user_namespaces")
    if max_namespaces is None:
        findings.append(Finding(USERNS, "this kernel has no user namespaces "
                                        f"({proc_sys}/user/max_user_namespaces is missing)",
                                "boot a kernel built with CONFIG_USER_NS=y"))
    elif max_namespaces == 0:
        findings.append(Finding(USERNS, "user namespaces are disabled "
                                        "(user.max_user_namespaces = 0)",
                                "sysctl -w user.max_user_namespaces=10000"))
    # Debian's own switch, in its kernels only.
    if _sysctl(proc_sys, "kernel.unprivileged_userns_clone") == 0:
        findings.append(Finding(USERNS, "unprivileged user namespaces are disabled "
                                        "(kernel.unprivileged_userns_clone = 0)",
                                "sysctl -w kernel.unprivileged_userns_clone=1"))
    if _sysctl(proc_sys, "kernel.apparmor_restrict_unprivileged_userns") == 1:
        findings.append(Finding(APPARMOR, "AppArmor denies unprivileged user namespaces "
                                          "(kernel.apparmor_restrict_unprivileged_userns = 1)",
                                "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 "
                                "(or an AppArmor profile with 'userns,' for dib's python)"))
    return findings


def overlay_findings(scratch: str | os.PathLike | None = None) -> list[Finding]:
    """Try an overlay mount in a user namespace of our own, as a rootless
    build makes them (no subordinate ids needed: the kernel's rule does not
    depend on them)."""
    if runner.which("unshare") is None:
        return [Finding(OVERLAY, "cannot try an overlay mount: unshare is missing",
                        "apt-get install util-linux")]
    with tempfile.TemporaryDirectory(prefix="dib-overlay-probe-", dir=scratch) as top:
        dirs = {name: os.path.join(top, name) for name in ("lower", "upper", "work", "merged")}
        for path in dirs.values():
            os.mkdir(path)
        # userxattr, as a rootless build mounts its layers (kernel 5.11 on).
        options = (f"lowerdir={dirs['lower']},upperdir={dirs['upper']},"
                   f"workdir={dirs['work']},userxattr")
        try:
            runner.run(["unshare", "--user", "--map-root-user", "--mount", "--",
                        "mount", "-t", "overlay", "overlay", "-o", options, dirs["merged"]],
                       what="an overlay mount in a user namespace", timeout=30)
        except CommandError as exc:
            return [Finding(OVERLAY, "overlayfs cannot be mounted in a user namespace: "
                                     + (exc.output_tail.strip() or f"exit {exc.returncode}"),
                            "boot a kernel of version 5.11 or later "
                            "(overlayfs in user namespaces)")]
    return []


def rootless_findings(host: Host | None = None, uid: int | None = None, *,
                      try_overlay: bool = True) -> list[Finding]:
    """Everything in the way of a rootless build for ``uid`` (default: the
    user running dib); empty when nothing is."""
    host = host or Host()
    uid = os.getuid() if uid is None else uid
    try:
        account = pwd.getpwuid(uid)
    except KeyError:
        return [Finding(SUBIDS, f"uid {uid} has no entry in the user database",
                        "useradd the user running dib")]
    findings = subid_findings(host, account.pw_name, uid, account.pw_gid)
    findings += helper_findings(host)
    findings += sysctl_findings(host.proc_sys)
    # With namespaces switched off the overlay cannot be tried, and its
    # failure would say nothing new.
    if try_overlay and not any(f.check in (USERNS, APPARMOR) for f in findings):
        findings += overlay_findings()
    return findings


def _sysctl(proc_sys: Path, name: str) -> int | None:
    path = proc_sys.joinpath(*name.split("."))
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _xattr(path: Path) -> bytes | None:
    try:
        return os.getxattr(path, _CAPABILITY_XATTR)
    except OSError:
        return None
