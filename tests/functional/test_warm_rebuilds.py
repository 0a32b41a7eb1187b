"""Warm rebuilds reuse every unchanged phase; a change reruns exactly what it must."""
from __future__ import annotations

import os
import signal
import time

import pytest

from functional_support import needs_build_host, read_tar_member

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
    # SIGKILL as install.d's layer is being stored.
    cache_element(builds, f"killed-{time.time_ns()}")
    stamp = f"{time.time_ns()}"
    builds.element("slowstore", {
        "README.rst": "x\n", "element-deps": "cachetest\n",
        "install.d/90-slowstore": f"#!/bin/bash\necho {stamp} > /etc/slowstore\n"
                                  "echo storing-now\n"})
    proc = builds.start("-t", "tar", "slowstore", name="k").proc
    for line in proc.stdout:
        if "storing-now" in line:
            break
    # Let the phase end and the store begin, then kill everything at once.
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    after = builds.run("-t", "tar", "slowstore", name="k")
    assert after.returncode == 0, after.output[-3000:]
    assert read_tar_member(after.image.with_suffix(".tar"), "./etc/slowstore") == \
        f"{stamp}\n".encode()
    assert builds.workspaces() == [], "the killed build's workspace was not cleaned up"


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
    assert all(step["cached"] for step in third.report["steps"] if step["name"] != "cleanup")


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
