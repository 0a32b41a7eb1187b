"""User namespaces for builds without root.

A rootless build runs in a new user namespace, with a mount namespace of its
own, in which the caller is uid and gid 0 and ids 1 to 65536 are subordinate
ids the administrator gave the user in ``/etc/subuid`` and ``/etc/subgid``.
The kernel lets an unprivileged process map only its own id; a wider mapping
is written by the setuid helpers ``newuidmap`` and ``newgidmap``, which check
it against those files. So hooks see root, and a file a hook gives to uid 1000
is owned on disk by the user's first subordinate id + 999.

The namespace is made by a small helper process (``dib.runtime._userns_exec``)
that unshares, tells us through a pipe, waits until we have written its maps,
becomes uid 0 and replaces itself with the command.
"""
from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from dib import runner
from dib.errors import CommandError, DibError

LOG = logging.getLogger(__name__)
SUBUID_FILE = Path("/etc/subuid")
SUBGID_FILE = Path("/etc/subgid")
# Inside ids 1..65536 come from the subordinate ranges: every id a Debian
# package may create (system ids, users from 1000, nobody at 65534).
SUBORDINATE_IDS = 65536
# What preflight suggests when a user has no subordinate ids (shadow's own
# default first range).
SUGGESTED_FIRST_ID = 100000
_LINE = re.compile(r"^([^:\s]+):([0-9]+):([0-9]+)$")


class UserNamespaceError(DibError):
    """A user namespace could not be set up for a rootless build."""


@dataclass(frozen=True)
class SubIdRange:
    """One line of /etc/subuid or /etc/subgid: ``owner:start:count``."""
    owner: str      # a user name or a numeric uid
    start: int
    count: int
    line: int

    @property
    def end(self) -> int:
        """The first id after the range."""
        return self.start + self.count


@dataclass(frozen=True)
class Extent:
    """One line of a uid_map or gid_map: ``count`` ids from ``inside`` in the
    namespace are ``outside`` onwards on the host."""
    inside: int
    outside: int
    count: int


@dataclass(frozen=True)
class IdMap:
    user: str
    uids: tuple[Extent, ...]
    gids: tuple[Extent, ...]

    def host_uid(self, inside: int) -> int:
        return _outside(self.uids, inside)

    def host_gid(self, inside: int) -> int:
        return _outside(self.gids, inside)


def parse_subids(text: str, path: str | os.PathLike) -> list[SubIdRange]:
    """The ranges in the text of a subuid/subgid file; blank lines and
    ``#`` comments are skipped, anything else malformed is an error naming
    the file and line."""
    ranges = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None or int(match.group(3)) == 0:
            raise UserNamespaceError(
                f"{path} line {number} is malformed: {raw!r}",
                hint="each line must be NAME_OR_UID:FIRST_ID:COUNT with a count above 0; "
                     "fix the line (usermod --add-subuids/--add-subgids writes valid ones)")
        ranges.append(SubIdRange(match.group(1), int(match.group(2)), int(match.group(3)),
                                 number))
    return ranges


def read_subids(path: str | os.PathLike) -> list[SubIdRange]:
    """The ranges in a subuid/subgid file; none when it does not exist."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UserNamespaceError(f"cannot read {path}: {exc.strerror}") from None
    return parse_subids(text, path)


def ranges_for(ranges: Sequence[SubIdRange], user: str, uid: int) -> list[SubIdRange]:
    """The ranges of one user, in file order; like newuidmap, a line may name
    the user or give the uid as a number (in both files)."""
    return [r for r in ranges if r.owner in (user, str(uid))]


def choose_extents(own_id: int, ranges: Sequence[SubIdRange], *,
                   needed: int = SUBORDINATE_IDS) -> tuple[Extent, ...] | None:
    """Inside 0 is ``own_id``; inside 1..needed come from ``ranges`` in file
    order, several if one is too small. The kernel refuses host ids mapped
    twice, so ids already taken (the user's own, an overlap between two
    lines) are skipped. None when the ranges hold fewer than ``needed`` ids."""
    extents = [Extent(0, own_id, 1)]
    taken = [(own_id, own_id + 1)]
    inside = 1
    for subrange in ranges:
        for start, end in _free_pieces(subrange.start, subrange.end, taken):
            count = min(end - start, needed + 1 - inside)
            extents.append(Extent(inside, start, count))
            taken.append((start, start + count))
            inside += count
            if inside > needed:
                return tuple(extents)
    return None


def available_ids(own_id: int, ranges: Sequence[SubIdRange]) -> int:
    """How many distinct subordinate ids the ranges give (the own id excluded)."""
    taken = [(own_id, own_id + 1)]
    total = 0
    for subrange in ranges:
        for start, end in _free_pieces(subrange.start, subrange.end, taken):
            taken.append((start, end))
            total += end - start
    return total


def suggested_range(*files: Sequence[SubIdRange]) -> tuple[int, int]:
    """A first and last id for a new user's range that overlaps no range in
    ``files`` (what preflight puts in its usermod command)."""
    first = max([SUGGESTED_FIRST_ID, *(r.end for ranges in files for r in ranges)])
    return first, first + SUBORDINATE_IDS - 1


def add_subids_command(user: str, *files: Sequence[SubIdRange]) -> str:
    first, last = suggested_range(*files)
    return (f"usermod --add-subuids {first}-{last} --add-subgids {first}-{last} {user}")


def id_map(uid: int | None = None, *, subuid: str | os.PathLike = SUBUID_FILE,
           subgid: str | os.PathLike = SUBGID_FILE) -> IdMap:
    """The mapping for a user (default: the one running dib): own uid and
    primary gid as 0, then 65536 subordinate ids of each kind."""
    uid = os.getuid() if uid is None else uid
    try:
        account = pwd.getpwuid(uid)
    except KeyError:
        raise UserNamespaceError(f"uid {uid} has no entry in the user database, so it "
                                 "has no subordinate ids") from None
    uid_ranges = read_subids(subuid)
    gid_ranges = read_subids(subgid)
    extents = {}
    for kind, own, path, ranges in (("uids", uid, subuid, uid_ranges),
                                    ("gids", account.pw_gid, subgid, gid_ranges)):
        mine = ranges_for(ranges, account.pw_name, uid)
        chosen = choose_extents(own, mine)
        if chosen is None:
            have = available_ids(own, mine)
            raise UserNamespaceError(
                f"a rootless build needs {SUBORDINATE_IDS} subordinate {kind} for user "
                f"{account.pw_name}; {path} gives it {have}",
                hint=add_subids_command(account.pw_name, uid_ranges, gid_ranges))
        extents[kind] = chosen
    return IdMap(account.pw_name, extents["uids"], extents["gids"])


def newidmap_argv(tool: str, pid: int, extents: Sequence[Extent]) -> list[str]:
    """``newuidmap PID INSIDE OUTSIDE COUNT...`` (newgidmap alike)."""
    argv = [tool, str(pid)]
    for extent in extents:
        argv += [str(extent.inside), str(extent.outside), str(extent.count)]
    return argv


def start_in_userns(argv: Sequence[str], mapping: IdMap, *, what: str,
                    stdin: int | None = None, stdout: int | None = None,
                    stderr: int | None = None, env: Mapping[str, str] | None = None,
                    cwd: str | os.PathLike | None = None) -> runner.Spawned:
    """Start ``argv`` as uid 0 of a new user namespace mapped by ``mapping``,
    in a new mount namespace whose mounts do not propagate to the host's.

    The command shares our process group (as the build proper does, so a
    break shell gets the terminal); leaving the returned ``Spawned``'s
    ``with`` block kills it."""
    tools = {name: runner.which(name) for name in ("newuidmap", "newgidmap")}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        raise UserNamespaceError(f"{' and '.join(missing)} not found: a rootless build "
                                 "needs them to map subordinate ids",
                                 hint="apt-get install uidmap")
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    try:
        child = runner.spawn([sys.executable, "-m", "dib.runtime._userns_exec",
                              str(ready_w), str(go_r), "--", *argv],
                             pass_fds=(ready_w, go_r), stdin=stdin, stdout=stdout,
                             stderr=stderr, env=env, cwd=cwd, what=what, own_group=False)
    finally:
        os.close(ready_w)
        os.close(go_r)
    try:
        with open(ready_r, "rb", closefd=True) as ready:
            unshared = ready.read(1) == b"u"
        if not unshared:
            status = child.wait()
            raise UserNamespaceError(
                f"{what}: could not create a user namespace (exit status {status})",
                hint="run 'dib doctor' as this user to see what the host lacks")
        _write_maps(child.pid, mapping, tools["newuidmap"] or "", tools["newgidmap"] or "")
        os.write(go_w, b"g")
    except BaseException:
        os.close(go_w)
        child.kill()
        raise
    os.close(go_w)
    return child


def run_in_userns(argv: Sequence[str], mapping: IdMap, *, what: str,
                  **streams: int | None) -> int:
    """Run ``argv`` as in ``start_in_userns`` to its end; its exit status."""
    with start_in_userns(argv, mapping, what=what, **streams) as child:
        return child.wait()


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a directory, also one a rootless build wrote: what belongs to
    subordinate ids (a package's own user, overlayfs's mode-0 work
    directories) only uid 0 of the build's user namespace may remove."""
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path) or os.geteuid() == 0:
        return
    try:
        mapping = id_map()
    except UserNamespaceError:
        return      # no namespace to remove it from: leave what is left
    status = run_in_userns(["rm", "-rf", "--one-file-system", "--", os.fspath(path)], mapping,
                           what=f"removing {path}")
    if status != 0:
        LOG.warning("could not remove all of %s (rm exit status %d)", path, status)


def _write_maps(pid: int, mapping: IdMap, newuidmap: str, newgidmap: str) -> None:
    for argv, kind, path in ((newidmap_argv(newuidmap, pid, mapping.uids), "uids", SUBUID_FILE),
                             (newidmap_argv(newgidmap, pid, mapping.gids), "gids", SUBGID_FILE)):
        try:
            runner.run(argv, what=f"mapping {kind} with {os.path.basename(argv[0])}")
        except CommandError as exc:
            raise UserNamespaceError(
                f"{exc.message}\n  {path} must give user {mapping.user} these ids, and "
                f"{argv[0]} must be setuid root",
                hint="run 'dib doctor' as this user to see what the host lacks") from None


def _free_pieces(start: int, end: int, taken: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """[start, end) without the intervals in ``taken``, in order."""
    pieces = [(start, end)]
    for t_start, t_end in taken:
        pieces = [piece for p_start, p_end in pieces
                  for piece in ((p_start, min(p_end, t_start)), (max(p_start, t_end), p_end))
                  if piece[0] < piece[1]]
    return sorted(pieces)


def _outside(extents: Sequence[Extent], inside: int) -> int:
    for extent in extents:
        if extent.inside <= inside < extent.inside + extent.count:
            return extent.outside + inside - extent.inside
    raise ValueError(f"id {inside} is not mapped")
