"""The build plan: phase order, hook merging and ordering, --dry-run."""
from __future__ import annotations

import pytest

from dib.elements.discovery import find_elements
from dib.elements.resolve import resolve
from dib.errors import PlanError
from dib.plan import HOOK_PHASES, PHASE_NAMES, PHASES, describe, make_plan, merge_hooks, phase


def elements_of(tree, *requested):
    return resolve(list(requested), find_elements([tree.root])).elements


def test_dib_phase_order():
    # DIB's phases in DIB's order, after dib's own checks
    assert PHASE_NAMES == ("preflight", "root", "extra-data", "pre-install", "install",
                           "packages", "post-install", "post-root", "block-device",
                           "pre-finalise", "finalise", "cleanup")
    assert [p.name for p in PHASES if not p.step] == ["preflight"]
    in_chroot = {p.name for p in PHASES if p.in_chroot}
    assert in_chroot == {"pre-install", "install", "packages", "post-install", "finalise"}
    # every phase but the -p packages step is a hook directory an element may have
    assert [p.name for p in PHASES if p not in HOOK_PHASES] == ["packages"]
    assert phase("install").directory == "install.d"


def test_unknown_phase():
    with pytest.raises(PlanError) as err:
        phase("install-ish")
    assert "install-ish" in str(err.value) and "pre-install" in str(err.value)


def test_steps_follow_phase_order(tree):
    tree.os_element("os", hooks={"cleanup": ["10-c"], "root": ["10-r"], "preflight": ["10-pc"],
                                 "finalise": ["10-f"], "install": ["10-i"],
                                 "extra-data": ["10-e"], "pre-install": ["10-p"],
                                 "post-install": ["10-pi"], "post-root": ["10-pr"],
                                 "block-device": ["10-b"], "pre-finalise": ["10-pf"]})
    plan = make_plan(elements_of(tree, "os"))
    assert [s.phase for s in plan.steps] == [p.name for p in HOOK_PHASES]
    assert all(s.in_chroot == phase(s.phase).in_chroot for s in plan.steps)


def test_sort_n_across_elements(tree):
    tree.os_element("os", hooks={"install": ["10-os", "2-os", "no-number-os", "_os"]})
    tree.add("other", hooks={"install": ["05-other", "10-aaa", "-dash", "100-late",
                                         "10_underscore"]})
    hooks, skipped = merge_hooks(elements_of(tree, "os", "other"), "install")
    assert skipped == []
    assert [h.name for h in hooks] == ["-dash", "_os", "no-number-os", "2-os", "05-other",
                                       "10-aaa", "10-os", "10_underscore", "100-late"]
    assert {h.name: h.element for h in hooks}["10-aaa"] == "other"


def test_ties_broken_by_bytes(tree):
    tree.os_element("os", hooks={"install": ["50-b", "50-B", "50-a"]})
    tree.add("x", hooks={"install": ["50-A"]})
    hooks, _ = merge_hooks(elements_of(tree, "os", "x"), "install")
    assert [h.name for h in hooks] == ["50-A", "50-B", "50-a", "50-b"]


def test_only_executable_well_named_files_run(tree):
    path = tree.os_element("os", hooks={"install": ["10-good"]},
                           files={"install.d/20-not-executable": "#!/bin/bash\n",
                                  "install.d/30-foo.sh": "#!/bin/bash\n",
                                  "install.d/40-a b": "#!/bin/bash\n"},
                           executable=["install.d/30-foo.sh", "install.d/40-a b"])
    (path / "install.d" / "50-dir").mkdir()
    plan = make_plan(elements_of(tree, "os"))
    assert [s.hook for s in plan.steps] == ["10-good"]
    skipped = {h.name: h.skipped_reason for h in plan.skipped}
    assert skipped == {"20-not-executable": "not executable",
                       "30-foo.sh": "name does not match ^[0-9A-Za-z_-]+$",
                       "40-a b": "name does not match ^[0-9A-Za-z_-]+$",
                       "50-dir": "not a regular file"}
    text = describe(plan)
    assert "install.d/30-foo.sh (os)" in text
    assert "install.d/20-not-executable (os): not executable" in text


def test_duplicate_hook_name_names_both_files(tree):
    tree.os_element("os", hooks={"install": ["10-same"]})
    tree.add("other", hooks={"install": ["10-same"]})
    with pytest.raises(PlanError) as err:
        make_plan(elements_of(tree, "os", "other"))
    message = str(err.value)
    assert "10-same" in message and "install.d" in message
    assert str(tree.path("os") / "install.d" / "10-same") in message
    assert str(tree.path("other") / "install.d" / "10-same") in message


def test_same_name_in_different_phases_is_fine(tree):
    tree.os_element("os", hooks={"install": ["10-same"]})
    tree.add("other", hooks={"post-install": ["10-same"]})
    plan = make_plan(elements_of(tree, "os", "other"))
    assert [(s.phase, s.element) for s in plan.steps] == [("install", "os"),
                                                          ("post-install", "other")]


def test_skipped_duplicate_is_not_a_clash(tree):
    tree.os_element("os", hooks={"install": ["10-same"]})
    tree.add("other", files={"install.d/10-same": "not executable\n"})
    plan = make_plan(elements_of(tree, "os", "other"))
    assert [s.element for s in plan.steps] == ["os"]
    assert [h.element for h in plan.skipped] == ["other"]


def test_packages_step(tree):
    tree.os_element("os", hooks={"install": ["10-i"], "post-install": ["10-p"]})
    plan = make_plan(elements_of(tree, "os"), packages=("vim", "curl"))
    text = describe(plan)
    lines = text.splitlines()
    assert lines.index("install.d [chroot]") < lines.index(
        "packages [chroot]: install-packages vim curl") < lines.index(
        "post-install.d [chroot]")


def test_describe(tree):
    tree.os_element("os", hooks={"root": ["10-make-root"], "install": ["50-install"],
                                 "cleanup": ["99-tidy"]})
    tree.add("extra", deps=["os"], hooks={"install": ["20-extra"]})
    plan = make_plan(elements_of(tree, "extra", "os"))
    assert plan.steps_of("install")[0].hook == "20-extra"
    text = describe(plan)
    assert text.splitlines()[0] == "elements: extra os"
    assert "root.d [host]" in text
    assert "install.d [chroot]" in text
    assert "cleanup.d [host]" in text
    assert "20-extra    extra" in text
    assert "50-install  os" in text
    assert "not run" not in text
    assert "finalise" not in text   # phases without hooks are left out
