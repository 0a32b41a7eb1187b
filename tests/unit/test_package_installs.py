"""The package-installs schema, validation and squash rules."""
from __future__ import annotations

import jsonschema
import pytest

from dib.elements import package_installs as pi
from dib.errors import ElementError

ENV = {"DIB_PYTHON_VERSION": "3"}


def squash(*entries, env=None, arch="amd64"):
    return pi.squash(list(entries), env=ENV if env is None else env, arch=arch)


def installs(result, phase="install.d"):
    return result[phase]["install"]


def uninstalls(result, phase="install.d"):
    return result[phase]["uninstall"]


# ---------------------------------------------------------------- schema

@pytest.mark.parametrize("data", [
    {"curl": None},
    {"curl": {}},
    {"grub": {"phase": "pre-install.d", "arch": "amd64,arm64"}},
    {"x": [{"when": "A = 1"}, {"when": ["A != 1", "B = 2"], "not-arch": "ppc64el"}]},
    {"y": {"build-only": True, "installtype": "package", "dib_python_version": 3}},
    {"z": {"uninstall": True, "dib_python_version": "2"}},
])
def test_schema_accepts_valid_files(data):
    jsonschema.validate(data, pi.SCHEMA)
    pi.validate(data, element="el", path="el/package-installs.yaml")


@pytest.mark.parametrize("data", [
    {"curl": {"phase": "install"}},
    {"curl": {"phaes": "install.d"}},
    {"curl": {"arch": "amd64", "not-arch": "arm64"}},
    {"curl": {"uninstall": "yes"}},
    {"curl": {"installtype": "binary"}},
    {"curl": {"when": 3}},
    {"curl": "install.d"},
    ["curl"],
])
def test_schema_rejects_invalid_files(data):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, pi.SCHEMA)


def test_validate_names_element_file_package_and_key():
    with pytest.raises(ElementError) as exc:
        pi.validate({"curl": {"phaes": "install.d"}}, element="webby",
                    path="/e/webby/package-installs.yaml")
    text = str(exc.value)
    assert "webby" in text and "/e/webby/package-installs.yaml" in text
    assert "curl" in text and "phaes" in text
    assert "allowed keys" in text


def test_validate_bad_enum_value_says_what_is_allowed():
    with pytest.raises(ElementError) as exc:
        pi.validate({"grub": {"phase": "install"}}, element="boot", path="p.yaml")
    text = str(exc.value)
    assert "'install'" in text and "phase" in text and "pre-install.d" in text


def test_validate_arch_and_not_arch_together():
    with pytest.raises(ElementError) as exc:
        pi.validate({"grub": {"arch": "amd64", "not-arch": "arm64"}},
                    element="boot", path="p.yaml")
    assert "not-arch" in str(exc.value) and "grub" in str(exc.value)


def test_validate_list_entry_is_numbered():
    with pytest.raises(ElementError) as exc:
        pi.validate({"k": [{}, {"uninstall": "no"}]}, element="e", path="p")
    assert "entry 2" in str(exc.value) and "uninstall" in str(exc.value)


def test_validate_malformed_when():
    with pytest.raises(ElementError) as exc:
        pi.validate({"k": {"when": "FOO is 1"}}, element="e", path="p")
    assert "FOO is 1" in str(exc.value)


def test_validate_top_level_must_be_mapping():
    with pytest.raises(ElementError) as exc:
        pi.validate(["curl"], element="e", path="e/package-installs.yaml")
    assert "e/package-installs.yaml" in str(exc.value)


def test_validate_none_is_empty_file():
    pi.validate(None, element="e", path="p")


# ---------------------------------------------------------------- squash

def test_default_phase_is_install_d_and_order_follows_elements():
    result = squash(("a", {"curl": None, "less": None}), ("b", {"file": {}}))
    assert installs(result) == [["curl", "a"], ["less", "a"], ["file", "b"]]
    assert set(result) == set(pi.PHASES)
    assert installs(result, "pre-install.d") == []


def test_phase_is_honoured():
    result = squash(("a", {"lsb-release": {"phase": "pre-install.d"},
                           "late": {"phase": "post-install.d"}}))
    assert installs(result, "pre-install.d") == [["lsb-release", "a"]]
    assert installs(result, "post-install.d") == [["late", "a"]]


def test_uninstall_goes_to_uninstall_list():
    result = squash(("a", {"nano": {"uninstall": True}}))
    assert uninstalls(result) == [["nano", "a"]]
    assert installs(result) == []


def test_build_only_installs_and_uninstalls_in_its_phase():
    result = squash(("a", {"gcc": {"build-only": True, "phase": "pre-install.d"}}))
    assert installs(result, "pre-install.d") == [["gcc", "a"]]
    assert uninstalls(result, "pre-install.d") == [["gcc", "a"]]


def test_install_anywhere_cancels_uninstall():
    result = squash(("a", {"nano": {"uninstall": True, "phase": "post-install.d"}}),
                    ("b", {"nano": None}))
    assert uninstalls(result, "post-install.d") == []
    assert installs(result) == [["nano", "b"]]


def test_install_cancels_uninstall_regardless_of_order():
    result = squash(("b", {"nano": None}), ("a", {"nano": {"uninstall": True}}))
    assert uninstalls(result) == []


def test_install_cancels_build_only_uninstall():
    result = squash(("a", {"gcc": {"build-only": True}}), ("b", {"gcc": None}))
    assert uninstalls(result) == []
    assert installs(result) == [["gcc", "a"], ["gcc", "b"]]


def test_uninstall_false_is_a_plain_install():
    result = squash(("a", {"nano": {"uninstall": False}}))
    assert installs(result) == [["nano", "a"]]


def test_arch_list():
    data = {"grub-pc": {"arch": "amd64, i386"}, "grub-efi-arm64": {"arch": "arm64"}}
    assert installs(squash(("a", data), arch="amd64")) == [["grub-pc", "a"]]
    assert installs(squash(("a", data), arch="i386")) == [["grub-pc", "a"]]
    assert installs(squash(("a", data), arch="arm64")) == [["grub-efi-arm64", "a"]]


def test_not_arch_list():
    data = {"dmidecode": {"not-arch": "ppc64el,s390x"}}
    assert installs(squash(("a", data), arch="amd64")) == [["dmidecode", "a"]]
    assert installs(squash(("a", data), arch="s390x")) == []


def test_arch_and_not_arch_is_an_element_error():
    with pytest.raises(ElementError) as exc:
        squash(("boot", {"grub": {"arch": "amd64", "not-arch": "arm64"}}))
    assert "boot" in str(exc.value)


def test_installtype_default_is_source():
    data = {"src": {"installtype": "source"}, "pkg": {"installtype": "package"}}
    assert installs(squash(("nova", data), env={})) == [["src", "nova"]]


def test_installtype_default_from_env():
    data = {"src": {"installtype": "source"}, "pkg": {"installtype": "package"}}
    result = squash(("nova", data), env={"DIB_DEFAULT_INSTALLTYPE": "package"})
    assert installs(result) == [["pkg", "nova"]]


def test_installtype_per_element_with_dashes():
    data = {"src": {"installtype": "source"}, "pkg": {"installtype": "package"}}
    env = {"DIB_INSTALLTYPE_nova_api": "package", "DIB_DEFAULT_INSTALLTYPE": "source"}
    assert installs(squash(("nova-api", data), env=env)) == [["pkg", "nova-api"]]


def test_dib_python_version():
    data = {"python-yaml": {"dib_python_version": 2},
            "python3-yaml": {"dib_python_version": "3"}}
    assert installs(squash(("a", data))) == [["python3-yaml", "a"]]


def test_when_equal_and_not_equal():
    data = {"yes": {"when": "FOO = bar"}, "no": {"when": "FOO != bar"},
            "spaced": {"when": "FOO=bar"}}
    result = squash(("a", data), env={"FOO": "bar"})
    assert installs(result) == [["yes", "a"], ["spaced", "a"]]


def test_when_list_is_anded():
    data = {"both": {"when": ["A = 1", "B = 2"]}, "one": {"when": ["A = 1", "B = 3"]}}
    result = squash(("a", data), env={"A": "1", "B": "2"})
    assert installs(result) == [["both", "a"]]


def test_when_unset_variable_names_element_and_variable():
    with pytest.raises(ElementError) as exc:
        squash(("cloudy", {"cloud-init": {"when": "DIB_NOPE = 1"}}), env={})
    text = str(exc.value)
    assert "cloudy" in text and "DIB_NOPE" in text and "cloud-init" in text


def test_when_not_evaluated_for_other_arch():
    # The arch filter runs first, so an unset variable is not reached.
    data = {"k": {"arch": "arm64", "when": "UNSET_VAR = 1"}}
    assert installs(squash(("a", data), env={}, arch="amd64")) == []


def test_list_of_param_sets_are_alternatives():
    data = {"kernel": [{"arch": "amd64", "phase": "pre-install.d"},
                       {"arch": "arm64", "phase": "post-install.d"}]}
    result = squash(("a", data), arch="arm64")
    assert installs(result, "post-install.d") == [["kernel", "a"]]
    assert installs(result, "pre-install.d") == []


def test_duplicates_dropped_and_output_deterministic():
    entries = [("a", {"x": None, "y": {"build-only": True}}), ("b", {"x": None})]
    first = pi.squash(entries, env=ENV, arch="amd64")
    second = pi.squash(list(entries), env=ENV, arch="amd64")
    assert first == second
    assert installs(first) == [["x", "a"], ["y", "a"], ["x", "b"]]


def test_empty_and_missing_data():
    result = squash(("a", None), ("b", {}))
    assert all(not v["install"] and not v["uninstall"] for v in result.values())


def test_squash_output_is_json_serialisable():
    import json
    result = squash(("a", {"x": {"phase": "post-install.d", "build-only": True}}))
    assert json.loads(json.dumps(result)) == result
