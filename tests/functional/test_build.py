"""Real builds of debian-minimal to a tar, and what a failed or killed build leaves."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from functional_support import mountinfo, needs_build_host, read_tar_member

pytestmark = [pytest.mark.functional, needs_build_host]

# What mmdebstrap itself puts in /dev: nothing from the host's /dev.
STANDARD_DEV = {"console", "full", "null", "ptmx", "random", "tty", "urandom", "zero"}
PHASES = ["root", "extra-data", "pre-install", "install", "post-install", "post-root",
          "block-device", "pre-finalise", "finalise", "cleanup"]
CHROOT_PHASES = {"pre-install", "install", "post-install", "finalise"}


def probe_element(builds) -> None:
    """A hook in every phase that records phase, place and environment. The
    hooks are new in every run, so every phase really runs even when the cache
    holds an earlier run's build."""
    files = {"README.rst": "probe\n", "element-deps": "debian-minimal\n",
             "environment.d/10-probe.bash": "export PROBE_FROM_ENV_D=yes-$ARCH\n"}
    run = time.time_ns()
    for phase in PHASES:
        files[f"{phase}.d/99-probe-{phase}"] = f"""#!/bin/bash
# run {run}
set -eu -o pipefail
if [ -d /tmp/in_target.d ]; then
    place=chroot; log=/etc/phase-probe.log
else
    place=host; log=$TMP_MOUNT_PATH/etc/phase-probe.log
fi
in_element=no
case " $IMAGE_ELEMENT " in *" probe "*) in_element=yes;; esac
echo "{phase} $place $ARCH ${{DIB_RELEASE:-unset}} $PROBE_FROM_ENV_D $in_element" >> "$log"
"""
    builds.element("probe", files)


def test_debian_minimal_tar_is_a_clean_runnable_tree(builds, tmp_path):
    before = mountinfo()
    result = builds.run("-t", "tar", "debian-minimal", name="dm")
    assert result.returncode == 0, result.output[-3000:]
    tar = result.image.with_suffix(".tar")
    with tarfile.open(tar) as archive:
        members = archive.getmembers()
    devices = [m.name for m in members if m.ischr() or m.isblk()]
    assert devices, "the tree has no /dev nodes at all"
    assert {Path(d).name for d in devices} <= STANDARD_DEV, devices
    assert all(d.startswith("./dev/") for d in devices), devices
    assert read_tar_member(tar, "./etc/machine-id") == b""
    sources = read_tar_member(tar, "./etc/apt/sources.list.d/debian.sources").decode()
    assert "Suites: bookworm" in sources and "URIs: " in sources
    names = {m.name for m in members}
    assert not any(n.endswith("/.list") for n in names), "an empty-named apt list"
    for manifest in ("dib_arguments", "dib_environment", "dib-manifest-dpkg-dm"):
        assert f"./etc/dib-manifests/{manifest}" in names
        assert (builds.scratch / "dm.d" / "dib-manifests" / manifest).exists()
    assert "./tmp/in_target.d" not in names and "./usr/sbin/policy-rc.d" not in names
    tree = tmp_path / "tree"
    tree.mkdir()
    subprocess.run(["tar", "-xpf", str(tar), "-C", str(tree), "--numeric-owner"], check=True)
    assert subprocess.run(["chroot", str(tree), "/bin/true"]).returncode == 0
    # The image's own apt sources work: fetch the indexes and plan an install.
    (tree / "etc" / "resolv.conf").unlink(missing_ok=True)
    (tree / "etc" / "resolv.conf").write_bytes(Path("/etc/resolv.conf").read_bytes())
    for command in (["apt-get", "update"], ["apt-get", "-s", "install", "hello"]):
        apt = subprocess.run(["chroot", str(tree), *command], capture_output=True, text=True)
        assert apt.returncode == 0, apt.stdout + apt.stderr
    assert builds.leaked_mounts(before) == []
    assert builds.workspaces() == []


def test_hooks_run_in_dib_order_places_and_environment(builds):
    probe_element(builds)
    result = builds.run("-t", "tar", "probe", name="probe")
    assert result.returncode == 0, result.output[-3000:]
    log = read_tar_member(result.image.with_suffix(".tar"), "./etc/phase-probe.log")
    lines = [line.split() for line in log.decode().splitlines()]
    assert [line[0] for line in lines] == PHASES
    for phase, place, arch, release, env_d, in_element in lines:
        assert place == ("chroot" if phase in CHROOT_PHASES else "host"), phase
        assert arch == "amd64" and release == "bookworm"
        assert env_d == "yes-amd64", "environment.d was not sourced"
        assert in_element == "yes", "IMAGE_ELEMENT lacks the element"
    hooks = {(h["phase"], h["hook"]): h for h in result.report["hooks"]}
    assert hooks[("finalise", "99-probe-finalise")]["element"] == "probe"
    assert hooks[("finalise", "99-probe-finalise")]["exit"] == 0


def test_a_failing_hook_names_itself_and_leaves_nothing(builds):
    builds.element("breaks", {
        "README.rst": "x\n", "element-deps": "debian-minimal\n",
        "install.d/50-breaks": "#!/bin/bash\necho 'about to fail'\nexit 3\n"})
    before = mountinfo()
    result = builds.run("-t", "tar", "breaks", name="broken")
    assert result.returncode != 0
    assert "install/50-breaks of element 'breaks' failed with exit status 3" in result.output
    assert "about to fail" in result.output
    assert "Traceback" not in result.output
    assert builds.leaked_mounts(before) == []
    assert builds.workspaces() == []
    assert not result.image.with_suffix(".tar").exists()


def test_sigterm_stops_the_build_and_leaves_nothing(builds):
    marker = f"dib-sigterm-test-{os.getpid()}"
    builds.element("hangs", {
        "README.rst": "x\n", "element-deps": "debian-minimal\n",
        "install.d/50-hangs": f"#!/bin/bash\necho hook-started\nexec -a {marker} sleep 600\n"})
    before = mountinfo()
    proc = builds.start("-t", "tar", "hangs", name="hung").proc
    seen = []
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        seen.append(line)
        if "hook-started" in line or time.monotonic() > deadline:
            break
    assert any("hook-started" in line for line in seen), "".join(seen[-30:])
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "stopped by signal SIGTERM" in rest
    assert builds.leaked_mounts(before) == []
    assert builds.workspaces() == []
    survivors = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert survivors.stdout.strip() == "", "a process started by a hook survived"


def test_problems_are_reported_before_any_work(builds):
    cases = [
        (("-t", "bogus", "debian-minimal"), "unknown output type 'bogus'"),
        (("-t", "docker", "debian-minimal"), "docker"),
        (("debian-minimal", "no-such-element"), "element 'no-such-element' not found"),
        (("--image-size", "-3", "debian-minimal"), "--image-size"),
    ]
    for args, message in cases:
        started = time.monotonic()
        result = builds.run(*args, name="never")
        assert result.returncode != 0
        assert message in result.output, result.output
        assert "Traceback" not in result.output
        assert time.monotonic() - started < 20, "the check came after slow work"
    assert builds.workspaces() == []


ROOT_THEN_DATA = """\
- local_loop:
    name: image0
- partitioning:
    base: image0
    label: mbr
    partitions:
      - name: root
        size: 2GiB
        mkfs:
          type: ext4
          mount:
            mount_point: /
            fstab:
              options: defaults
      - name: data
        size: 100%
"""


def test_element_checks_stop_the_build_before_the_bootstrap(builds, tmp_path):
    layout = tmp_path / "root-then-data.yaml"
    layout.write_text(ROOT_THEN_DATA)
    cases = [
        (("-t", "tar", "debian-minimal", "cloud-init-datasources"),
         {"DIB_CLOUD_INIT_DATASOURCES": "NoCloud, Openstak"},
         "cloud-init-datasources (preflight.d/05-check-cloud-init-datasources): "
         "DIB_CLOUD_INIT_DATASOURCES='NoCloud, Openstak' names datasources cloud-init "
         "does not know: 'Openstak'"),
        (("-t", "tar", "debian-minimal", "devuser"),
         {"DIB_DEV_USER_AUTHORIZED_KEYS": str(tmp_path / "missing.pub")},
         "devuser (preflight.d/50-devuser): DIB_DEV_USER_AUTHORIZED_KEYS="),
        (("-t", "qcow2", "debian-minimal", "vm", "growroot"),
         {"DIB_BLOCK_DEVICE_CONFIG": f"file://{layout}"},
         "growroot (preflight.d/05-growroot-check-layout): the block-device layout"),
    ]
    before = mountinfo()
    for args, env, message in cases:
        result = builds.run(*args, name="never", env=env)
        assert result.returncode != 0
        assert message in result.output, result.output[-3000:]
        assert "of element" in result.output and "preflight/" in result.output
        assert "Traceback" not in result.output
        # no step ran, not even a cached one: the check came first
        assert result.report.get("steps") == [], result.report.get("steps")
    assert builds.leaked_mounts(before) == []
    assert builds.workspaces() == []


def test_several_tree_outputs_from_one_build(builds):
    # Without the kernel's modules the tree is a fifth of its size: what is
    # tested is that every format is written from the one tree, not how fast
    # gzip -9 and xz are.
    builds.element("no-modules", {
        "README.rst": "x\n", "element-deps": "debian-minimal\n",
        "cleanup.d/90-no-modules": "#!/bin/bash\nrm -rf \"$TARGET_ROOT\"/usr/lib/modules\n"})
    result = builds.run("-t", "tar,tgz,squashfs,docker", "--docker-target", "dib/test:1",
                        "no-modules", name="multi")
    assert result.returncode == 0, result.output[-3000:]
    base = result.image
    for suffix in (".tar", ".tgz", ".squash", ".docker.tar"):
        assert Path(f"{base}{suffix}").stat().st_size > 10 << 20, suffix
    listing = subprocess.run(["unsquashfs", "-l", f"{base}.squash", "etc/machine-id"],
                             capture_output=True, text=True)
    assert "etc/machine-id" in listing.stdout
    with tarfile.open(f"{base}.docker.tar") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["dib/test:1"]


def test_the_debian_element_builds(builds):
    result = builds.run("-t", "tar", "debian", name="debian")
    assert result.returncode == 0, result.output[-3000:]
    tar = result.image.with_suffix(".tar")
    with tarfile.open(tar) as archive:
        names = set(archive.getnames())
    assert "./usr/sbin/sshd" in names
    assert "./usr/bin/cloud-init" in names
