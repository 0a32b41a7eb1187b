"""Boot checks that passed are kept and reported instead of booting the same
image again: what decides reuse, and that only passes are kept."""
from __future__ import annotations

from pathlib import Path

import pytest

from dib.testing import boot as boot_module
from dib.testing import functional as ft
from dib.testing.boot import BootReport, ExecResult
from dib.testing.boot_passes import BootPasses, pass_key
from dib.testing.cases import Case
from dib.testing.expect import boot_plan


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "elements" / "thing" / "test-elements" / "up"
    directory.mkdir(parents=True)
    (directory / "element-deps").write_text("thing\n")
    (directory / "expect.yaml").write_text("boot:\n  exec:\n    - run: cat /etc/thing\n")
    return directory


IMAGE_KEY = "a" * 64


def test_the_same_image_case_and_plan_give_the_same_key(case_dir):
    assert pass_key(IMAGE_KEY, case_dir, "plan") == pass_key(IMAGE_KEY, case_dir, "plan")


def test_an_image_made_of_other_inputs_changes_the_key(case_dir):
    assert pass_key("b" * 64, case_dir, "plan") != pass_key(IMAGE_KEY, case_dir, "plan")


def test_a_changed_case_file_or_plan_changes_the_key(case_dir):
    before = pass_key(IMAGE_KEY, case_dir, "plan")
    assert pass_key(IMAGE_KEY, case_dir, "other plan") != before
    (case_dir / "user-data").write_text("#cloud-config\n")
    assert pass_key(IMAGE_KEY, case_dir, "plan") != before


def test_a_kept_pass_is_recalled_with_when_it_passed(tmp_path):
    passes = BootPasses(tmp_path / "boots")
    assert passes.recall("k" * 64) is None
    passes.remember("k" * 64, {"reached": True, "ok": True})
    kept = passes.recall("k" * 64)
    assert kept["reached"] is True
    assert kept["reused_from"].endswith("Z")


def test_an_unreadable_pass_counts_as_none(tmp_path):
    (tmp_path / "boots").mkdir()
    (tmp_path / "boots" / ("k" * 64 + ".json")).write_text("{not json")
    assert BootPasses(tmp_path / "boots").recall("k" * 64) is None


class FakeQemu:
    """Stands in for qemu only: the reuse around it is what is tested."""

    def __init__(self, output: str):
        self.output, self.boots = output, 0

    def __call__(self, spec):
        self.boots += 1
        return BootReport(image=spec.image, firmware=spec.firmware, expect=spec.expect,
                          reached=True, seconds=30.0, login="serial",
                          exec_results=[ExecResult("cat /etc/thing", 0, self.output)])


def _check_twice(monkeypatch, tmp_path, case_dir, output: str, image_key: str = IMAGE_KEY,
                 **options):
    qemu = FakeQemu(output)
    monkeypatch.setattr(boot_module, "boot", qemu)
    case = Case(element="thing", name="up", path=case_dir,
                element_path=case_dir.parent.parent)
    plan = boot_plan({"boot": {"exec": [{"run": "cat /etc/thing", "output": "yes"}]}})
    opts = ft.Options(cache_dir=tmp_path / "cache", **options)
    image = tmp_path / "image.qcow2"
    first = ft._boot_case(case, plan, image, image_key, tmp_path, opts)
    second = ft._boot_case(case, plan, image, image_key, tmp_path, opts)
    return qemu.boots, first, second


def test_a_passed_boot_is_not_repeated(monkeypatch, tmp_path, case_dir):
    boots, first, second = _check_twice(monkeypatch, tmp_path, case_dir, "yes\n")
    assert boots == 1
    assert first[1] == [] and "reused_from" not in first[0]
    assert second[1] == [] and second[0]["reused_from"]
    assert second[0]["exec"] == first[0]["exec"]


def test_a_failed_boot_is_never_kept(monkeypatch, tmp_path, case_dir):
    boots, first, second = _check_twice(monkeypatch, tmp_path, case_dir, "no\n")
    assert boots == 2
    assert first[1] and second[1]
    assert not (tmp_path / "cache" / "boots").exists()


@pytest.mark.parametrize("option", [{"reuse_boots": False}, {"no_cache": True},
                                    {"image_key": ""}])
def test_rerun_boots_no_cache_or_an_unkeyed_image_boot_every_time(monkeypatch, tmp_path,
                                                                   case_dir,
                                                  option):
    boots, _, second = _check_twice(monkeypatch, tmp_path, case_dir, "yes\n",
                                    **option)
    assert boots == 2
    assert "reused_from" not in second[0]

