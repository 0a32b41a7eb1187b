"""The settings registry, its parsers and BuildConfig."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from dib.config import settings as settings_mod
from dib.config.build import NOT_SETTINGS, BuildConfig, load_build_config, with_changes
from dib.config.cli import build_parser, config_from_args
from dib.config.docs import REGENERATE, settings_markdown
from dib.config.settings import APPEND, COUNT, OFF_SWITCH, SETTINGS, SWITCH, VALUE
from dib.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def parse(argv, environ=None, ramdisk=False):
    parser = build_parser("disk-image-create", "test")
    args = parser.parse_args(argv)
    return config_from_args(args, environ=environ or {}, argv=argv, ramdisk=ramdisk)


# -- the registry itself ----------------------------------------------------

def test_every_setting_has_help():
    for setting in SETTINGS:
        assert setting.help.strip(), setting.name
        assert setting.help.strip()[-1] in ".)", f"{setting.name}: help is not a sentence"


def test_build_config_has_a_field_for_exactly_each_setting():
    fields = [f.name for f in dataclasses.fields(BuildConfig)]
    settings = [f for f in fields if f not in NOT_SETTINGS]
    assert settings == [s.name for s in SETTINGS], "BuildConfig and SETTINGS differ"
    assert set(NOT_SETTINGS) <= set(fields)


def test_every_default_fits_its_field_type():
    config = load_build_config({}, elements=("debian-minimal",), environ={})
    hints = {f.name: f.type for f in dataclasses.fields(BuildConfig)}
    for setting in SETTINGS:
        value = getattr(config, setting.name)
        expected = hints[setting.name]
        kinds = {"str": str, "int": int, "bool": bool, "float": (int, float),
                 "tuple[str, ...]": tuple}
        base = expected.split(" | ")[0]
        if value is None:
            assert "None" in expected, f"{setting.name} defaults to None but is {expected}"
        else:
            assert isinstance(value, kinds[base]), f"{setting.name}={value!r} is not {expected}"


def test_names_unique():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))


def test_flags_unique():
    flags = [f for s in SETTINGS for f in s.flags]
    assert len(flags) == len(set(flags)), sorted(f for f in flags if flags.count(f) > 1)


def test_env_vars_unique():
    envs = [s.env for s in SETTINGS if s.env]
    assert len(envs) == len(set(envs)), sorted(e for e in envs if envs.count(e) > 1)


def test_yaml_keys_unique_and_not_reserved():
    keys = [s.yaml_key for s in SETTINGS if s.yaml_key]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    assert not {"elements", "environment", "ramdisk"} & set(keys)


def test_kinds_known_and_defaults_parse():
    for setting in SETTINGS:
        assert setting.kind in (VALUE, SWITCH, OFF_SWITCH, COUNT, APPEND), setting.name
        if setting.choices:
            assert setting.default_value() in setting.choices, setting.name


def test_dib_flags_present():
    flags = {f for s in SETTINGS for f in s.flags}
    for flag in ("-a", "-o", "-t", "-x", "-u", "-c", "-n", "-p", "--checksum",
                 "--image-size", "--image-extra-size", "--image-cache",
                 "--max-online-resize", "--min-tmpfs", "--mkfs-journal-size",
                 "--mkfs-options", "--no-tmpfs", "--offline", "--qemu-img-options",
                 "--root-label", "--ramdisk-element", "--install-type",
                 "--docker-target", "--logfile"):
        assert flag in flags, flag


def test_by_name():
    assert settings_mod.by_name("arch").env == "ARCH"
    with pytest.raises(KeyError):
        settings_mod.by_name("nope")


# -- precedence ---------------------------------------------------------------

def test_defaults():
    config = parse(["base"], {})
    assert config.image_types == ("qcow2",)
    assert os.path.basename(config.image_name) == "image"
    assert config.fs_type == "ext4"
    assert config.root_label == "cloudimg-rootfs"
    assert config.debug_trace == 0
    assert config.packages == ()
    assert config.install_type == "source"
    assert config.elements == ("base",)
    assert config.ramdisk is False


def test_env_over_default():
    config = parse(["e"], {"DIB_IMAGE_SIZE": "3.5", "FS_TYPE": "xfs",
                           "DIB_OFFLINE": "1", "DIB_CHECKSUM": "sha256"})
    assert config.image_size == 3.5
    assert config.fs_type == "xfs"
    assert config.root_label == "img-rootfs"
    assert config.offline is True
    assert config.checksum == ("sha256",)


def test_cli_over_env():
    config = parse(["--image-size", "2", "--root-label", "mine", "e"],
                   {"DIB_IMAGE_SIZE": "9", "ROOT_LABEL": "theirs"})
    assert config.image_size == 2.0
    assert config.root_label == "mine"


def test_empty_env_value_means_unset():
    config = parse(["e"], {"DIB_IMAGE_SIZE": "", "FS_TYPE": ""})
    assert config.image_size is None
    assert config.fs_type == "ext4"


def test_environ_is_a_snapshot():
    environ = {"FOO": "bar"}
    config = parse(["e"], environ)
    environ["FOO"] = "changed"
    assert config.environ["FOO"] == "bar"


def test_config_is_frozen():
    config = parse(["e"])
    with pytest.raises(Exception):
        config.arch = "arm64"
    assert with_changes(config, dry_run=True).dry_run is True


def test_checksum_switch():
    assert parse(["--checksum", "e"]).checksum == ("md5", "sha256")
    assert parse(["e"], {"DIB_CHECKSUM": "1"}).checksum == ("md5", "sha256")
    assert parse(["e"], {"DIB_CHECKSUM": "0"}).checksum == ()


# -- flags that behave specially ---------------------------------------------

def test_x_counts_and_adds_to_env():
    assert parse(["-x", "e"]).debug_trace == 1
    assert parse(["-x", "-x", "e"]).debug_trace == 2
    assert parse(["-x", "e"], {"DIB_DEBUG_TRACE": "2"}).debug_trace == 3
    assert parse(["e"], {"DIB_DEBUG_TRACE": "2"}).debug_trace == 2


def test_packages_comma_lists_repeat():
    config = parse(["-p", "a,b", "-p", "c", "e"])
    assert config.packages == ("a", "b", "c")


def test_types_comma_list():
    assert parse(["-t", "qcow2,tar", "e"]).image_types == ("qcow2", "tar")


def test_output_name_strips_single_type_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parse(["-o", "out.tar", "-t", "tar", "e"])
    assert config.image_name == str(tmp_path / "out")
    # two types: the name is left alone
    config = parse(["-o", "out.tar", "-t", "tar,qcow2", "e"])
    assert config.image_name == str(tmp_path / "out.tar")
    # the default type qcow2
    assert parse(["-o", "x.qcow2", "e"]).image_name == str(tmp_path / "x")
    # a suffix that is not the type stays
    assert parse(["-o", "x.raw", "-t", "tar", "e"]).image_name == str(tmp_path / "x.raw")


def test_image_extra_size_and_journal_size_work():
    # DIB's getopt list leaves these two out, so DIB rejects them.
    config = parse(["--image-extra-size", "512", "--mkfs-journal-size", "32", "e"])
    assert config.image_extra_size == 512
    assert config.mkfs_journal_size == 32
    config = parse(["e"], {"DIB_IMAGE_EXTRA_SIZE": "100", "DIB_JOURNAL_SIZE": "16"})
    assert (config.image_extra_size, config.mkfs_journal_size) == (100, 16)


def test_arch_aliases_and_default():
    assert parse(["-a", "x86_64", "e"]).arch == "amd64"
    assert parse(["-a", "aarch64", "e"]).arch == "arm64"
    assert parse(["e"], {"ARCH": "arm64"}).arch == "arm64"
    assert parse(["e"]).arch  # the host's


def test_ramdisk_flag_passes_through():
    assert parse(["e"], ramdisk=True).ramdisk is True


# -- errors ------------------------------------------------------------------

def test_unknown_flag_names_it():
    with pytest.raises(ConfigError) as err:
        parse(["--no-such-flag", "e"])
    assert "--no-such-flag" in str(err.value)
    assert "--help" in str(err.value)
    assert err.value.exit_code == 2


def test_bad_choice_names_flag_and_accepted_values():
    with pytest.raises(ConfigError) as err:
        parse(["--install-type", "binary", "e"])
    message = str(err.value)
    assert "--install-type" in message
    assert "binary" in message
    assert "source" in message and "package" in message


def test_bad_number_names_flag():
    with pytest.raises(ConfigError) as err:
        parse(["--image-size", "big", "e"])
    assert "--image-size" in str(err.value)
    assert "big" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse(["--image-extra-size", "-5", "e"])
    assert "--image-extra-size" in str(err.value)


def test_bad_env_value_names_variable_and_accepted_values():
    with pytest.raises(ConfigError) as err:
        parse(["e"], {"FS_TYPE": "zfs"})
    message = str(err.value)
    assert "FS_TYPE" in message and "zfs" in message
    for accepted in ("ext4", "xfs"):
        assert accepted in message
    with pytest.raises(ConfigError) as err:
        parse(["e"], {"DIB_IMAGE_SIZE": "-1"})
    assert "DIB_IMAGE_SIZE" in str(err.value)


def test_bad_arch_lists_known():
    with pytest.raises(ConfigError) as err:
        parse(["-a", "sparc", "e"])
    assert "sparc" in str(err.value) and "amd64" in str(err.value)


def test_bad_qemu_img_options():
    with pytest.raises(ConfigError) as err:
        parse(["--qemu-img-options", "compat", "e"])
    assert "--qemu-img-options" in str(err.value) and "compat" in str(err.value)
    assert parse(["--qemu-img-options", "compat=1.1", "e"]).qemu_img_options == "compat=1.1"


def test_bad_checksum_env():
    with pytest.raises(ConfigError) as err:
        parse(["e"], {"DIB_CHECKSUM": "crc32"})
    assert "DIB_CHECKSUM" in str(err.value) and "crc32" in str(err.value)


def test_load_build_config_directly():
    config = load_build_config({"image_types": ("tar",)}, elements=["a"], environ={})
    assert config.image_types == ("tar",)
    assert config.elements == ("a",)


def test_help_lists_env_vars(capsys):
    parser = build_parser("disk-image-create", "test")
    text = parser.format_help()
    for setting in SETTINGS:
        for flag in setting.flags:
            assert flag in text
    assert "DIB_IMAGE_SIZE" in text


# -- generated docs ----------------------------------------------------------

def test_settings_markdown_covers_registry():
    text = settings_markdown()
    for setting in SETTINGS:
        assert f"`{setting.name}`" in text
        if setting.env:
            assert f"`{setting.env}`" in text
        if setting.yaml_key:
            assert f"`{setting.yaml_key}`" in text
    assert str(Path.home()) + "/" not in text or str(Path.home()) == "/"


def test_docs_settings_md_is_current():
    page = REPO / "docs" / "settings.md"
    assert page.is_file(), f"docs/settings.md is missing; generate it with: {REGENERATE}"
    assert page.read_text() == settings_markdown(), (
        f"docs/settings.md is stale; regenerate it with: {REGENERATE}")


def test_dib_arguments_leave_out_flags_that_do_not_shape_the_image():
    from dib.config.settings import SETTINGS, recorded_argv
    argv = ["-o", "img", "--json-report", "r.json", "--logfile=build.log", "-x", "-x",
            "--cache-dir", "/c", "--workdir", "/w", "--explain-cache", "-t", "qcow2",
            "-p", "vim", "debian-minimal", "vm"]
    assert recorded_argv(argv) == ["-o", "img", "-t", "qcow2", "-p", "vim",
                                   "debian-minimal", "vm"]
    assert all(s.recorded for s in SETTINGS if s.name in ("image_name", "packages",
                                                           "image_types"))
