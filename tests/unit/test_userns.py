"""Rootless builds: subordinate id files, the mapping chosen from them, the
newuidmap argv, and the preflight findings from a fake host."""
from __future__ import annotations

import os
import pwd
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from dib.cli.doctor import rootless_rows
from dib.runtime import userns_preflight as preflight
from dib.runtime.userns import (Extent, SubIdRange, UserNamespaceError, add_subids_command,
                                choose_extents, id_map, newidmap_argv, parse_subids,
                                ranges_for, read_subids)

ME = pwd.getpwuid(os.getuid())


def _ranges(*spans: tuple[int, int]) -> list[SubIdRange]:
    return [SubIdRange("u", start, count, n) for n, (start, count) in enumerate(spans, 1)]


# --- the files --------------------------------------------------------------

def test_names_numeric_owners_several_ranges_comments_and_blank_lines():
    text = ("# given by the administrator\n"
            "\n"
            "alice:100000:65536\n"
            "  1001:165536:65536  \n"
            "alice:300000:1000\n")
    assert parse_subids(text, "/etc/subuid") == [
        SubIdRange("alice", 100000, 65536, 3),
        SubIdRange("1001", 165536, 65536, 4),
        SubIdRange("alice", 300000, 1000, 5)]


@pytest.mark.parametrize("line", ["alice:100000", "alice:100000:65536:9", "alice:1e5:65536",
                                  "alice:100000:-1", ":100000:65536", "alice:100000:0"])
def test_a_malformed_line_is_an_error_naming_the_file_and_line(line):
    with pytest.raises(UserNamespaceError) as caught:
        parse_subids(f"bob:100000:65536\n{line}\n", "/etc/subgid")
    assert "/etc/subgid line 2 is malformed" in caught.value.message
    assert line in caught.value.message
    assert "NAME_OR_UID:FIRST_ID:COUNT" in caught.value.hint


def test_a_missing_file_gives_no_ranges(tmp_path):
    assert read_subids(tmp_path / "subuid") == []


def test_a_user_is_named_by_name_or_by_uid():
    ranges = parse_subids("alice:100000:10\nbob:200000:10\n1001:300000:10\n", "f")
    assert [r.start for r in ranges_for(ranges, "alice", 1001)] == [100000, 300000]
    assert [r.start for r in ranges_for(ranges, "bob", 1002)] == [200000]
    assert ranges_for(ranges, "carol", 1003) == []


# --- the mapping ------------------------------------------------------------

def test_own_id_is_root_and_one_range_gives_the_rest():
    assert choose_extents(1000, _ranges((100000, 65536))) == (
        Extent(0, 1000, 1), Extent(1, 100000, 65536))


def test_a_larger_range_is_used_only_as_far_as_needed():
    assert choose_extents(1000, _ranges((100000, 1000000))) == (
        Extent(0, 1000, 1), Extent(1, 100000, 65536))


def test_several_small_ranges_are_joined_in_file_order():
    assert choose_extents(1000, _ranges((500000, 40000), (200000, 30000))) == (
        Extent(0, 1000, 1), Extent(1, 500000, 40000), Extent(40001, 200000, 25536))


def test_no_host_id_is_mapped_twice():
    # The user's own id inside a range, and two lines that overlap.
    chosen = choose_extents(100010, _ranges((100000, 40000), (130000, 40000)))
    assert chosen == (Extent(0, 100010, 1), Extent(1, 100000, 10), Extent(11, 100011, 39989),
                      Extent(40000, 140000, 25537))
    outside = [i for e in chosen for i in range(e.outside, e.outside + e.count)]
    assert len(outside) == len(set(outside)) == 65537


def test_too_few_ids_gives_no_mapping():
    assert choose_extents(1000, _ranges((100000, 65535))) is None
    assert choose_extents(1000, []) is None


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_mapping_of_the_current_user(tmp_path):
    subuid = _write(tmp_path / "subuid", f"other:100000:65536\n{ME.pw_name}:165536:65536\n")
    subgid = _write(tmp_path / "subgid", f"{ME.pw_uid}:231072:70000\n")
    mapping = id_map(subuid=subuid, subgid=subgid)
    assert mapping.uids == (Extent(0, ME.pw_uid, 1), Extent(1, 165536, 65536))
    assert mapping.gids == (Extent(0, ME.pw_gid, 1), Extent(1, 231072, 65536))
    # A file a hook gives to uid 1000 belongs on the host to the first id + 999.
    assert mapping.host_uid(1000) == 165536 + 999
    assert mapping.host_gid(0) == ME.pw_gid


def test_a_range_too_small_says_how_many_ids_and_how_to_add_them(tmp_path):
    subuid = _write(tmp_path / "subuid", f"{ME.pw_name}:100000:65536\n")
    subgid = _write(tmp_path / "subgid", f"{ME.pw_name}:100000:1000\n")
    with pytest.raises(UserNamespaceError) as caught:
        id_map(subuid=subuid, subgid=subgid)
    assert caught.value.message == (f"a rootless build needs 65536 subordinate gids for user "
                                    f"{ME.pw_name}; {subgid} gives it 1000")
    # A range after every one in either file, so the command cannot clash.
    assert caught.value.hint == ("usermod --add-subuids 165536-231071 "
                                 f"--add-subgids 165536-231071 {ME.pw_name}")


def test_the_newuidmap_argv():
    extents = (Extent(0, 1000, 1), Extent(1, 100000, 65536))
    assert newidmap_argv("/usr/bin/newuidmap", 4321, extents) == [
        "/usr/bin/newuidmap", "4321", "0", "1000", "1", "1", "100000", "65536"]


def test_the_suggested_range_starts_at_shadows_default_when_nothing_is_taken():
    assert add_subids_command("alice") == ("usermod --add-subuids 100000-165535 "
                                           "--add-subgids 100000-165535 alice")


# --- preflight --------------------------------------------------------------

def _host(tmp_path: Path, *, subids: str | None = None,
          sysctls: dict[str, str] | None = None,
          helpers: dict[str, Path | None] | None = None) -> preflight.Host:
    root = tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    full = f"{ME.pw_name}:100000:65536\n"
    for name in ("subuid", "subgid"):
        (root / "etc" / name).write_text(full if subids is None else subids)
    settings = {"user.max_user_namespaces": "63000"}
    settings.update(sysctls or {})
    for name, value in settings.items():
        path = root.joinpath("proc", "sys", *name.split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    if helpers is None:
        helpers = {}
        for name in ("newuidmap", "newgidmap"):
            helpers[name] = root / "usr" / "bin" / name
            helpers[name].parent.mkdir(parents=True, exist_ok=True)
            helpers[name].write_text("")
    return preflight.Host(subuid=root / "etc" / "subuid", subgid=root / "etc" / "subgid",
                          proc_sys=root / "proc" / "sys", helpers=helpers)


def _checks(findings: list[preflight.Finding]) -> list[str]:
    return [f.check for f in findings]


def test_no_subordinate_ids_names_the_usermod_command(tmp_path):
    host = _host(tmp_path, subids="someone:100000:65536\n")
    findings = preflight.subid_findings(host, ME.pw_name, ME.pw_uid, ME.pw_gid)
    assert [f.problem for f in findings] == [
        f"user {ME.pw_name} has 0 subordinate uids in {host.subuid}, "
        "a rootless build needs 65536",
        f"user {ME.pw_name} has 0 subordinate gids in {host.subgid}, "
        "a rootless build needs 65536"]
    assert {f.fix for f in findings} == {
        f"usermod --add-subuids 165536-231071 --add-subgids 165536-231071 {ME.pw_name}"}


def test_enough_subordinate_ids_is_no_finding(tmp_path):
    host = _host(tmp_path)
    assert preflight.subid_findings(host, ME.pw_name, ME.pw_uid, ME.pw_gid) == []


def test_a_malformed_subuid_line_is_a_finding_naming_file_and_line(tmp_path):
    host = _host(tmp_path, subids=f"{ME.pw_name}:100000\n")
    [finding] = preflight.subid_findings(host, ME.pw_name, ME.pw_uid, ME.pw_gid)
    assert finding.problem == f"{host.subuid} line 1 is malformed: '{ME.pw_name}:100000'"


def test_missing_helpers_name_the_package(tmp_path):
    host = _host(tmp_path, helpers={"newuidmap": None, "newgidmap": tmp_path / "absent"})
    assert [(f.problem, f.fix) for f in preflight.helper_findings(host)] == [
        ("newuidmap is not installed", "apt-get install uidmap"),
        ("newgidmap is not installed", "apt-get install uidmap")]


def test_a_helper_without_setuid_or_capability_is_a_finding(tmp_path):
    host = _host(tmp_path)
    findings = preflight.helper_findings(host)
    assert [f.problem for f in findings] == [
        f"{host.helpers['newuidmap']} is neither setuid root nor has the cap_setuid "
        "file capability",
        f"{host.helpers['newgidmap']} is neither setuid root nor has the cap_setgid "
        "file capability"]
    assert findings[0].fix.startswith(f"chmod u+s {host.helpers['newuidmap']}")


def _caps_xattr(permitted: int, *, effective: bool) -> bytes:
    # struct vfs_cap_data, revision 2: magic|flags, then (permitted, inheritable) x 2.
    magic = 0x02000000 | (1 if effective else 0)
    return struct.pack("<IIIII", magic, permitted & 0xFFFFFFFF, 0, permitted >> 32, 0)


@pytest.mark.parametrize("mode, owner, xattr, ok", [
    (stat.S_IFREG | stat.S_ISUID | 0o755, 0, None, True),
    (stat.S_IFREG | stat.S_ISUID | 0o755, 1000, None, False),   # setuid, but not root's
    (stat.S_IFREG | 0o755, 0, None, False),
    (stat.S_IFREG | 0o755, 0, _caps_xattr(1 << preflight.CAP_SETUID, effective=True), True),
    (stat.S_IFREG | 0o755, 0, _caps_xattr(1 << preflight.CAP_SETUID, effective=False), False),
    (stat.S_IFREG | 0o755, 0, _caps_xattr(1 << preflight.CAP_SETGID, effective=True), False),
    (stat.S_IFDIR | stat.S_ISUID | 0o755, 0, None, False),
])
def test_what_lets_newuidmap_write_a_map(mode, owner, xattr, ok):
    problem = preflight.helper_problem("newuidmap", mode, owner, xattr, preflight.CAP_SETUID)
    assert (problem is None) == ok


def test_capabilities_above_31_are_read_from_the_high_word():
    caps, effective = preflight.capabilities_of(_caps_xattr(1 << 38 | 1 << 7, effective=True))
    assert caps == {7, 38} and effective


@pytest.mark.parametrize("sysctls, expected", [
    ({}, []),
    ({"user.max_user_namespaces": "0"},
     [(preflight.USERNS, "sysctl -w user.max_user_namespaces=10000")]),
    ({"kernel.unprivileged_userns_clone": "0"},
     [(preflight.USERNS, "sysctl -w kernel.unprivileged_userns_clone=1")]),
    ({"kernel.unprivileged_userns_clone": "1"}, []),
    ({"kernel.apparmor_restrict_unprivileged_userns": "1"},
     [(preflight.APPARMOR, "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 "
                           "(or an AppArmor profile with 'userns,' for dib's python)")]),
    ({"kernel.apparmor_restrict_unprivileged_userns": "0"}, []),
])
def test_user_namespaces_switched_off_by_sysctl(tmp_path, sysctls, expected):
    host = _host(tmp_path, sysctls=sysctls)
    assert [(f.check, f.fix) for f in preflight.sysctl_findings(host.proc_sys)] == expected


def test_a_kernel_without_user_namespaces(tmp_path):
    [finding] = preflight.sysctl_findings(tmp_path / "empty")
    assert "has no user namespaces" in finding.problem
    assert "CONFIG_USER_NS=y" in finding.fix


def test_all_findings_of_a_host_and_the_doctor_rows(tmp_path):
    host = _host(tmp_path, subids="", sysctls={"user.max_user_namespaces": "0"},
                 helpers={"newuidmap": None, "newgidmap": None})
    findings = preflight.rootless_findings(host)    # namespaces off: no overlay try
    assert _checks(findings) == [preflight.SUBIDS, preflight.SUBIDS, preflight.HELPERS,
                                 preflight.HELPERS, preflight.USERNS]
    rows = {row["check"]: row for row in rootless_rows(findings)}
    assert list(rows) == [f"rootless builds: {check}" for check in preflight.CHECKS]
    assert rows["rootless builds: subordinate ids"]["ok"] is False
    # One command fixes both files: it is given once.
    assert rows["rootless builds: subordinate ids"]["fix"].count("usermod --add-subuids") == 1
    assert rows["rootless builds: AppArmor allows user namespaces"]["ok"] is True


def test_a_host_ready_for_rootless_builds_has_no_findings(tmp_path):
    host = _host(tmp_path)
    for name in ("newuidmap", "newgidmap"):
        # The real helpers when installed (setuid root); else the test has
        # nothing to point at.
        real = Path("/usr/bin") / name
        if not real.exists():
            pytest.skip(f"{real} is not installed (apt-get install uidmap)")
        host.helpers[name] = real
    assert preflight.rootless_findings(host, try_overlay=False) == []


# --- mounts in a user namespace ----------------------------------------------

_PROBE = ("from pathlib import Path; from dib.runtime import mounts; "
          "print(mounts.in_user_namespace(), "
          "mounts.overlay_options([Path('/a'), Path('/b')], Path('/u'), Path('/w')))")


def test_overlays_keep_their_data_in_user_xattrs_in_a_user_namespace():
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (apt-get install util-linux)")
    inside = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", _PROBE],
                            capture_output=True, text=True)
    if inside.returncode != 0 and "unshare failed" in inside.stderr:
        pytest.skip(f"no user namespaces here: {inside.stderr.strip()}")
    assert inside.stdout == "True lowerdir=/b:/a,upperdir=/u,workdir=/w,userxattr\n", inside.stderr
    if not Path("/proc/self/uid_map").read_text().split() == ["0", "0", "4294967295"]:
        return      # the tests themselves run in a user namespace
    outside = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True)
    assert outside.stdout == "False lowerdir=/b:/a,upperdir=/u,workdir=/w\n", outside.stderr


# --- sudo in a rootless build -------------------------------------------------

def _sudo(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    from dib.runtime.hostshims import write_sudo_shim
    shim = write_sudo_shim(tmp_path / "bin") / "sudo"
    return subprocess.run([str(shim), *argv], capture_output=True, text=True)


def test_sudo_runs_the_command_itself_with_options_that_change_nothing_dropped(tmp_path):
    result = _sudo(tmp_path, "-E", "-H", "-u", "root", "--", "sh", "-c", 'echo "$0:$*"', "x", "y")
    assert (result.returncode, result.stdout) == (0, "x:y\n")
    # NAME=VALUE before the command sets it for the command, as sudo does.
    result = _sudo(tmp_path, "DIB_X=1", "sh", "-c", 'echo "$DIB_X"')
    assert result.stdout == "1\n"
    assert _sudo(tmp_path, "false").returncode == 1


@pytest.mark.parametrize("argv, message", [
    (("-u", "nobody", "true"), "only -u root works (asked: nobody)"),
    (("-i",), "option -i is not supported"),
    ((), "no command given"),
])
def test_sudo_says_what_it_cannot_do(tmp_path, argv, message):
    result = _sudo(tmp_path, *argv)
    assert result.returncode == 1
    assert message in result.stderr


# --- the phase cache and the id mapping ----------------------------------------

def test_the_id_mapping_of_a_user_namespace():
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (apt-get install util-linux)")
    probe = "from dib.runtime.mounts import id_mapping; print(id_mapping())"
    inside = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", probe],
                            capture_output=True, text=True)
    if inside.returncode != 0 and "unshare failed" in inside.stderr:
        pytest.skip(f"no user namespaces here: {inside.stderr.strip()}")
    uid, gid = os.getuid(), os.getgid()
    assert inside.stdout == f"uids 0:{uid}:1; gids 0:{gid}:1\n", inside.stderr


def test_a_cache_entry_of_another_id_mapping_is_explained():
    from dib.cache import keys
    rootless = {keys.IDS_INPUT: "uids 0:1000:1 1:100000:65536; gids 0:1000:1 1:100000:65536",
                "root.d/08-debootstrap": "a"}
    other = {keys.IDS_INPUT: "uids 0:1001:1 1:165536:65536; gids 0:1001:1 1:165536:65536",
             "root.d/08-debootstrap": "a"}
    root = {"root.d/08-debootstrap": "a"}
    # Root builds have no such input: their keys are what they were.
    assert keys.key_for(None, "root", root) != keys.key_for(None, "root", rootless)
    assert keys.key_for(None, "root", rootless) != keys.key_for(None, "root", other)
    assert keys.changed_inputs(root, rootless) == [keys.IDS_INPUT]
    assert keys.describe_change(keys.IDS_INPUT, root, rootless) == (
        "the entry was built as root, this build runs in a user namespace "
        f"({rootless[keys.IDS_INPUT]})")
    assert keys.describe_change(keys.IDS_INPUT, rootless, root).startswith(
        "the entry was built in a user namespace (uids 0:1000:1")
    assert keys.describe_change(keys.IDS_INPUT, rootless, other).startswith(
        "the entry was built with another id mapping")
