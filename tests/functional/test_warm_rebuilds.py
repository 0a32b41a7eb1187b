"""Warm rebuilds reuse every unchanged phase; a change reruns exactly what it must."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from functional_support import CACHE_DIR, needs_build_host, read_tar_member

pytestmark = [pytest.mark.functional, needs_build_host]
EARLY = ("root", "extra-data", "pre-install", "install", "post-install")
# The cache outlives a run of these tests: every run's hooks are its own (a
# comment is enough, since a hook's text is part of its phase's key), so what
# one run expects to be rebuilt was never stored by another.
RUN = f"{time.time_ns()}"


def cache_element(builds, finalise_text: str, env_word: str = "DIB_CACHETEST_VALUE") -> None:
    builds.element("cachetest", {
        "README.rst": "x\n", "element-deps": "debian-minimal\n",
        "post-install.d/50-cachetest-env": (
            f"#!/bin/bash\n# run {RUN}\nset -eu\n"
            f'echo "${{{env_word}:-unset}}" > /etc/cachetest-env\n'),
        "finalise.d/50-cachetest": (
            f"#!/bin/bash\n# run {RUN}\nset -eu\necho '{finalise_text}' > /etc/cachetest\n"),
    })


def test_changing_a_finalise_hook_reruns_only_finalise_and_later(builds):
    cache_element(builds, "first")
    first = builds.run("-t", "tar", "cachetest", name="c1")
    assert first.returncode == 0, first.output[-3000:]
    cache_element(builds, "second")
    second = builds.run("-t", "tar", "--explain-cache", "cachetest", name="c1")
    assert second.returncode == 0, second.output[-3000:]
    for step in EARLY:
        assert second.step(step)["cached"], step
    finalise = second.step("finalise")
    assert not finalise["cached"]
    assert "finalise.d/50-cachetest changed" in finalise["reason"]
    assert "finalise.d/50-cachetest changed" in second.output
    tar = second.image.with_suffix(".tar")
    assert read_tar_member(tar, "./etc/cachetest") == b"second\n"


def test_unchanged_rebuild_reuses_every_phase(builds):
    cache_element(builds, "same")
    assert builds.run("-t", "tar", "cachetest", name="u").returncode == 0
    again = builds.run("-t", "tar", "cachetest", name="u")
    assert again.returncode == 0, again.output[-3000:]
    for step in ("root", "extra-data", "pre-install", "install", "post-install", "finalise",
                 "tidy", "outputs"):
        assert again.step(step)["cached"], step
    assert read_tar_member(again.image.with_suffix(".tar"), "./etc/cachetest") == b"same\n"


def test_changing_a_variable_reruns_the_phase_that_reads_it(builds):
    cache_element(builds, "v")
    one = builds.run("-t", "tar", "cachetest", name="v", env={"DIB_CACHETEST_VALUE": "one"})
    assert one.returncode == 0, one.output[-3000:]
    two = builds.run("-t", "tar", "cachetest", name="v", env={"DIB_CACHETEST_VALUE": "two"})
    assert two.returncode == 0, two.output[-3000:]
    for step in ("root", "extra-data", "pre-install", "install"):
        assert two.step(step)["cached"], step
    post = two.step("post-install")
    assert not post["cached"]
    assert "DIB_CACHETEST_VALUE" in post["reason"]
    assert read_tar_member(two.image.with_suffix(".tar"), "./etc/cachetest-env") == b"two\n"


def test_a_build_killed_while_storing_leaves_the_cache_usable(builds):
    # A fresh hook makes install.d and later miss; the build is killed with
    # SIGKILL while install.d's layer is being stored. The hook writes many
    # small files so that the store (which lists every file) takes a while.
    cache_element(builds, f"killed-{time.time_ns()}")
    stamp = f"{time.time_ns()}"
    builds.element("slowstore", {
        "README.rst": "x\n", "element-deps": "cachetest\n",
        "install.d/90-slowstore": f"#!/bin/bash\necho {stamp} > /etc/slowstore\n"
                                  "mkdir -p /var/lib/slowstore\ncd /var/lib/slowstore\n"
                                  "seq 1 40000 | xargs touch\necho storing-now\n"})
    staging_dir = CACHE_DIR / "phases" / "tmp"
    before = set(staging_dir.iterdir()) if staging_dir.is_dir() else set()
    proc = builds.start("-t", "tar", "slowstore", name="k").proc
    for line in proc.stdout:
        if "storing-now" in line:
            break
    # Keep the build's output flowing while waiting for its store to begin.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    staging = _wait_for_staging(staging_dir, before, session=proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    key = staging.name.split(".")[0]
    assert not (CACHE_DIR / "phases" / "entries" / key).exists(), \
        "the store had finished before the kill; nothing was interrupted"
    after = builds.run("-t", "tar", "slowstore", name="k")
    assert after.returncode == 0, after.output[-3000:]
    assert read_tar_member(after.image.with_suffix(".tar"), "./etc/slowstore") == \
        f"{stamp}\n".encode()
    assert builds.workspaces() == [], "the killed build's workspace was not cleaned up"


def _wait_for_staging(staging_dir: Path, before: set[Path], *, session: int,
                      within: float = 120) -> Path:
    """The staging directory (KEY.PID.NS) a store of our build makes in the
    cache's tmp/, once it appears: only a process of the build's session
    (``session``) counts, since other builds may share the cache."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for path in set(staging_dir.iterdir()) - before if staging_dir.is_dir() else ():
            parts = path.name.split(".")
            if len(parts) == 3 and parts[1].isdigit() and _session(int(parts[1])) == session:
                return path
        time.sleep(0.005)
    raise AssertionError(f"no store of the build began within {within} s")


def _session(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def test_two_builds_at_once_make_a_step_once_and_share_it(builds):
    # Both builds miss install.d at about the same moment; the hook is slow
    # enough that, without a lock per key, both would run it.
    builds.element("together", {
        "README.rst": "x\n", "element-deps": "debian-minimal\n",
        "install.d/50-together": (f"#!/bin/bash\n# run {RUN}\nset -eu\nsleep 10\n"
                                  "echo made-by-$$ > /etc/together\n")})
    running = [builds.start("-t", "tar", "together", name=name) for name in ("a", "b")]
    results = [build.finish() for build in running]
    for result in results:
        assert result.returncode == 0, result.output[-3000:]
    made = [r for r in results if not r.step("install")["cached"]]
    assert len(made) == 1, "install.d ran in both builds"
    waited = next(r for r in results if r is not made[0])
    assert "another build is making step install" in waited.output, waited.output[-3000:]
    contents = {read_tar_member(r.image.with_suffix(".tar"), "./etc/together") for r in results}
    assert len(contents) == 1 and contents != {None}
    # Named as one of the two: manifests carry the image name.
    third = builds.run("-t", "tar", "together", name="a")
    assert third.returncode == 0, third.output[-3000:]
    # every step the cache keeps (the provenance, written fresh, has no key)
    assert all(step["cached"] for step in third.report["steps"]
               if step["key"] and step["name"] != "cleanup")


def test_what_cleanup_wrote_beside_the_image_comes_back_from_the_cache(builds):
    def beside(text: str) -> None:
        builds.element("beside", {
            "README.rst": "x\n", "element-deps": "debian-minimal\n",
            "cleanup.d/90-beside": (f"#!/bin/bash\n# run {RUN}\nset -eu\n"
                                    f"echo {text} > \"$IMAGE_NAME.extra\"\n"
                                    "mkdir -p \"$IMAGE_NAME.more\"\n"
                                    "echo inside > \"$IMAGE_NAME.more/file\"\n")})
    beside("first")
    one = builds.run("-t", "tar", "beside", name="p")
    assert one.returncode == 0, one.output[-3000:]
    extra = one.image.with_suffix(".extra")
    assert extra.read_text() == "first\n"
    extra.unlink()
    (one.image.parent / "p.more" / "file").unlink()
    two = builds.run("-t", "tar", "beside", name="p")
    assert two.returncode == 0, two.output[-3000:]
    assert two.step("cleanup")["cached"]
    assert extra.read_text() == "first\n", "the product was not restored from the cache"
    assert (one.image.parent / "p.more" / "file").read_text() == "inside\n"
    beside("second")
    three = builds.run("-t", "tar", "beside", name="p")
    assert three.returncode == 0, three.output[-3000:]
    assert not three.step("cleanup")["cached"]
    assert extra.read_text() == "second\n"


def test_builds_that_differ_only_where_the_package_installs_do_not_read_share_them(builds):
    # Like test-elements on debian-minimal: one brings a static file, an
    # environment.d setting and an install.d hook; the package installs
    # (whose hooks declare what they read) are made once for both.
    builds.element("plainos", {"README.rst": "x\n", "element-deps": "debian-minimal\n"})
    builds.element("extras", {
        "README.rst": "x\n", "element-deps": "debian-minimal\ninstall-static\n",
        "static/etc/extras-static": f"{RUN}\n",
        "environment.d/50-extras.bash": f"export DIB_EXTRAS_RUN={RUN}\n",
        "install.d/60-extras": ('#!/bin/bash\nset -eu\n'
                                'echo "$DIB_EXTRAS_RUN" > /etc/extras-env\n')})
    plain = builds.run("-t", "tar", "plainos", name="plain")
    assert plain.returncode == 0, plain.output[-3000:]
    extras = builds.run("-t", "tar", "extras", name="extras")
    assert extras.returncode == 0, extras.output[-3000:]
    # disk-image-create adds base, whose install.d hooks declare too: the
    # first part of install.d ends with the last of them
    packages = first_part(extras, "install")
    assert packages["cached"], packages["reason"]
    assert packages["key"] == first_part(plain, "install")["key"]
    assert extras.step("pre-install")["cached"]
    rest = extras.step("install")
    assert not rest["cached"]
    tar = extras.image.with_suffix(".tar")
    assert read_tar_member(tar, "./etc/extras-static") == f"{RUN}\n".encode()
    assert read_tar_member(tar, "./etc/extras-env") == f"{RUN}\n".encode()
    # the very packages a build without the extras installed
    status = "./var/lib/dpkg/status"
    assert read_tar_member(tar, status) == \
        read_tar_member(plain.image.with_suffix(".tar"), status)

    # A package of its own: the package installs are made again, with it.
    builds.element("extras", {
        "README.rst": "x\n", "element-deps": "debian-minimal\n",
        "package-installs.yaml": "hello:\n"})
    more = builds.run("-t", "tar", "extras", name="extras")
    assert more.returncode == 0, more.output[-3000:]
    again = first_part(more, "install")
    assert again["key"] != packages["key"]
    # the shared cache may hold this step from an earlier run of the test
    if not again["cached"]:
        assert "package-installs.json" in again["reason"]
    assert read_tar_member(more.image.with_suffix(".tar"), "./usr/bin/hello") is not None


def first_part(result, phase: str) -> dict:
    """The step of a phase's first hooks, when they declare what they read."""
    return next(s for s in result.report["steps"] if s["name"].startswith(f"{phase}:"))

