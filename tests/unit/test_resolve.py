"""Dependency resolution with DIB's semantics, deterministic."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dib.elements.discovery import find_elements
from dib.elements.resolve import resolve, with_build_defaults
from dib.errors import ElementError
from elementtree import ElementTree, subprocess_env


@pytest.fixture
def index(tree):
    """A tree like the one DIB's own resolver tests use."""
    tree.add("foo")
    tree.add("requires-foo", deps=["foo"])
    tree.add("requires-requires-foo", deps=["requires-foo"])
    tree.add("self", deps=["self"])
    tree.add("circular1", deps=["circular2"], provides=["operating-system"])
    tree.add("circular2", deps=["circular1"])
    tree.add("provides-virtual", provides=["virtual"])
    tree.add("also-provides-virtual", provides=["virtual"])
    tree.add("requires-virtual", deps=["virtual", "foo"])
    # a real element with the virtual name: must never be pulled in
    tree.add("virtual", deps=["extra-dependency"])
    tree.add("extra-dependency")
    tree.add("requires-new-virtual", deps=["new-virtual"])
    tree.add("provides-new-virtual", provides=["new-virtual"])
    tree.add("os", provides=["operating-system"])
    return find_elements([tree.root])


def names(requested, index):
    return resolve(requested, index).names


def test_no_deps(index):
    assert names(["foo", "os"], index) == ["foo", "os"]


def test_direct_deps(index):
    assert names(["requires-foo", "os"], index) == ["requires-foo", "os", "foo"]


def test_transitive_deps(index):
    assert set(names(["requires-requires-foo", "os"], index)) == {
        "requires-requires-foo", "requires-foo", "foo", "os"}


def test_self_dependency(index):
    assert names(["self", "os"], index) == ["self", "os"]


def test_cycle(index):
    assert names(["circular1"], index) == ["circular1", "circular2"]
    assert names(["circular2"], index) == ["circular2", "circular1"]


def test_duplicate_request(index):
    assert names(["foo", "foo", "os"], index) == ["foo", "os"]


def test_provides_satisfy_deps(index):
    result = resolve(["provides-virtual", "requires-virtual", "os"], index)
    assert result.names == ["provides-virtual", "requires-virtual", "os", "foo"]
    assert result.provided_by == {"virtual": "provides-virtual",
                                  "operating-system": "os"}
    assert "virtual" in result and "foo" in result and "nothing" not in result
    assert result.get("foo").name == "foo" and result.get("virtual") is None


def test_provider_after_requirer(index):
    """DIB bug 1303911: the provider may come later on the command line."""
    result = names(["requires-new-virtual", "provides-new-virtual", "os"], index)
    assert set(result) == {"requires-new-virtual", "provides-new-virtual", "os"}
    assert "new-virtual" not in result


def test_real_element_with_provided_name_not_pulled_in(index):
    result = names(["requires-virtual", "provides-virtual", "os"], index)
    assert "virtual" not in result
    assert "extra-dependency" not in result


def test_provided_twice_names_both(index):
    with pytest.raises(ElementError) as err:
        resolve(["provides-virtual", "also-provides-virtual", "os"], index)
    message = str(err.value)
    assert "'virtual'" in message
    assert "provides-virtual" in message and "also-provides-virtual" in message


def test_two_operating_systems(index):
    with pytest.raises(ElementError) as err:
        resolve(["os", "circular1"], index)
    assert "operating-system" in str(err.value)
    assert "'os'" in str(err.value) and "'circular1'" in str(err.value)


def test_requesting_a_provided_name_is_an_error(index):
    with pytest.raises(ElementError) as err:
        resolve(["provides-virtual", "virtual", "os"], index)
    message = str(err.value)
    assert "'virtual'" in message and "'provides-virtual'" in message
    with pytest.raises(ElementError) as err:
        resolve(["circular1", "operating-system"], index)
    assert "operating-system" in str(err.value) and "circular1" in str(err.value)


def test_missing_operating_system(index):
    with pytest.raises(ElementError) as err:
        resolve(["foo"], index)
    message = str(err.value)
    assert "operating-system" in message
    assert "operating system element" in message


def test_no_elements(index):
    with pytest.raises(ElementError):
        resolve([], index)


def test_unknown_element_suggests_close_names(index):
    with pytest.raises(ElementError) as err:
        resolve(["requires-fo", "os"], index)
    message = str(err.value)
    assert "'requires-fo'" in message and "not found" in message
    assert "'requires-foo'" in message


def test_unknown_dependency_names_requirer(tree):
    tree.os_element("os")
    tree.add("needs-unicorn", deps=["qqq"])
    with pytest.raises(ElementError) as err:
        resolve(["needs-unicorn", "os"], find_elements([tree.root]))
    assert "'qqq'" in str(err.value) and "'needs-unicorn'" in str(err.value)
    assert "ELEMENTS_PATH" in str(err.value)   # no close name: says where to look


def test_breadth_first_order(tree):
    tree.os_element("os")
    tree.add("top", deps=["left", "right"])
    tree.add("left", deps=["deep-left"])
    tree.add("right", deps=["deep-right"])
    tree.add("deep-left")
    tree.add("deep-right")
    assert names(["top", "os"], find_elements([tree.root])) == [
        "top", "os", "left", "right", "deep-left", "deep-right"]


def test_override_uses_earlier_path(tmp_path):
    first, second = ElementTree(tmp_path / "a"), ElementTree(tmp_path / "b")
    second.os_element("os")
    second.add("thing", deps=["never"])
    first.add("thing")
    result = resolve(["thing", "os"], find_elements([first.root, second.root]))
    assert result.get("thing").path == first.root / "thing"


# -- determinism across hash seeds ------------------------------------------

def test_same_order_under_different_hash_seeds(tmp_path):
    tree = ElementTree(tmp_path / "elements")
    tree.os_element("os", deps=[f"dep-{i:02d}" for i in range(12)])
    for i in range(12):
        tree.add(f"dep-{i:02d}", deps=[f"leaf-{(i * 7) % 12}", "os"])
        tree.add(f"leaf-{i}", deps=["shared"])
    tree.add("shared")
    orders = []
    for seed in ("1", "2", "3"):
        env = subprocess_env(PYTHONHASHSEED=seed, ELEMENTS_PATH=str(tree.root))
        out = subprocess.run([sys.executable, "-m", "dib.cli.element_info", "--env", "os"],
                             env=env, capture_output=True, text=True, check=True,
                             cwd=tmp_path).stdout
        line = next(li for li in out.splitlines() if li.startswith("export IMAGE_ELEMENT="))
        orders.append(line)
    assert orders[0] == orders[1] == orders[2]
    assert "dep-00 dep-01" in orders[0]


# -- what disk-image-create adds --------------------------------------------

def test_base_added_first():
    assert with_build_defaults(["debian"], arch="amd64", skip_base=False) == [
        "base", "debian"]
    assert with_build_defaults(["debian"], arch="amd64", skip_base=True) == ["debian"]
    assert with_build_defaults(["debian", "base"], arch="amd64", skip_base=False) == [
        "debian", "base"]


def test_vm_gets_a_block_device_element():
    assert with_build_defaults(["debian", "vm"], arch="amd64", skip_base=True) == [
        "debian", "vm", "block-device-mbr"]
    assert with_build_defaults(["debian", "vm"], arch="arm64", skip_base=True) == [
        "debian", "vm", "block-device-efi"]
    assert with_build_defaults(["debian", "vm", "block-device-gpt"], arch="amd64",
                               skip_base=True) == ["debian", "vm", "block-device-gpt"]
    assert with_build_defaults(["debian", "vm", "block-device-efi"], arch="amd64",
                               skip_base=False) == ["base", "debian", "vm",
                                                    "block-device-efi"]
    assert with_build_defaults(["debian"], arch="amd64", skip_base=True) == ["debian"]


def test_ramdisk_element_goes_first():
    assert with_build_defaults(["debian"], arch="amd64", skip_base=False,
                               ramdisk_element="ramdisk") == ["ramdisk", "base", "debian"]
