"""YAML manifests (diskimage-builder FILE.yaml): schema, merging, configs, CLI."""
from __future__ import annotations

import os
import textwrap

import jsonschema
import pytest

from dib.cli import manifest as manifest_cli
from dib.config import manifest
from dib.config.settings import SETTINGS
from dib.errors import ConfigError, ElementError
from elementtree import write


def yaml_file(tmp_path, text, name="images.yaml"):
    return write(tmp_path / name, textwrap.dedent(text))


def load(tmp_path, text, environ=None):
    return manifest.load_manifests([yaml_file(tmp_path, text)], environ=environ or {})


# -- the schema --------------------------------------------------------------

def test_schema_built_from_registry():
    schema = manifest.manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    properties = schema["items"]["properties"]
    for setting in SETTINGS:
        if setting.yaml_key:
            assert setting.yaml_key in properties
    for key in ("elements", "environment", "ramdisk"):
        assert key in properties
    assert schema["items"]["additionalProperties"] is False
    assert schema["type"] == "array"


def test_dib_example_validates(tmp_path):
    configs = load(tmp_path, """\
        - imagename: base
          arch: amd64
          types: [qcow2, tar]
          debug-trace: 2
          uncompressed: true
          checksum: true
          image-size: 3
          image-extra-size: 100
          mkfs-journal-size: 16
          qemu-img-options: {compat: "1.1", cluster_size: 65536}
          root-label: root
          install-type: package
          packages: [vim, curl]
          skip-base: true
          elements: [debian-minimal, vm]
          environment:
            DIB_RELEASE: bookworm
        """, environ={"HOME": "/root"})
    (config,) = configs
    assert os.path.basename(config.image_name) == "base"
    assert config.arch == "amd64"
    assert config.image_types == ("qcow2", "tar")
    assert config.debug_trace == 2
    assert config.uncompressed is True
    assert config.checksum == ("md5", "sha256")
    assert config.image_size == 3.0
    assert config.image_extra_size == 100
    assert config.mkfs_journal_size == 16
    assert config.qemu_img_options == "compat=1.1,cluster_size=65536"
    assert config.root_label == "root"
    assert config.install_type == "package"
    assert config.packages == ("vim", "curl")
    assert config.skip_base is True
    assert config.elements == ("debian-minimal", "vm")
    assert config.environ["DIB_RELEASE"] == "bookworm"
    assert config.environ["HOME"] == "/root"
    assert config.ramdisk is False
    assert config.argv[:2] == ("-o", "base")
    assert "-x" in config.argv and config.argv.count("-x") == 2
    assert config.argv[-2:] == ("debian-minimal", "vm")


def test_environment_over_os_environ_and_settings_from_it(tmp_path):
    (config,) = load(tmp_path, """\
        - elements: [x]
          environment: {FS_TYPE: xfs, KEEP: mine}
        """, environ={"KEEP": "theirs", "OTHER": "1", "DIB_IMAGE_SIZE": "7"})
    assert config.fs_type == "xfs"
    assert config.root_label == "img-rootfs"
    assert config.environ["KEEP"] == "mine" and config.environ["OTHER"] == "1"
    assert config.image_size == 7.0


def test_yaml_key_beats_environment(tmp_path):
    (config,) = load(tmp_path, """\
        - elements: [x]
          image-size: 2
          environment: {DIB_IMAGE_SIZE: "9"}
        """)
    assert config.image_size == 2.0


def test_false_switch_leaves_environment_in_charge(tmp_path):
    (config,) = load(tmp_path, "- {elements: [x], offline: false}\n",
                     environ={"DIB_OFFLINE": "1"})
    assert config.offline is True
    (config,) = load(tmp_path, "- {elements: [x], offline: true}\n")
    assert config.offline is True


def test_ramdisk(tmp_path):
    (config,) = load(tmp_path, "- {imagename: r, ramdisk: true, elements: [x]}\n")
    assert config.ramdisk is True


def test_debug_trace_adds_to_environment(tmp_path):
    (config,) = load(tmp_path, "- {elements: [x], debug-trace: 1}\n",
                     environ={"DIB_DEBUG_TRACE": "1"})
    assert config.debug_trace == 2


def test_types_as_string_and_name_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (config,) = load(tmp_path, "- {imagename: out.tar, types: tar, elements: [x]}\n")
    assert config.image_types == ("tar",)
    assert config.image_name == str(tmp_path / "out")


def test_extra_size_and_journal_size_work(tmp_path):
    # DIB passes these two keys to flags its getopt rejects.
    (config,) = load(tmp_path, "- {elements: [x], image-extra-size: 5, "
                               "mkfs-journal-size: 8}\n")
    assert (config.image_extra_size, config.mkfs_journal_size) == (5, 8)


# -- merging -----------------------------------------------------------------

def test_merge_rules():
    merged = manifest.merge_entries([
        {"imagename": "a", "elements": ["x"], "environment": {"A": "1", "B": "1"},
         "image-size": 1},
        {"imagename": "b", "elements": ["y"]},
        {"imagename": "a", "elements": ["z"], "environment": {"B": "2"}, "image-size": 2,
         "packages": ["p"]},
    ])
    assert list(merged) == ["a", "b"]
    assert merged["a"] == {"imagename": "a", "elements": ["x", "z"],
                           "environment": {"A": "1", "B": "2"}, "image-size": 2,
                           "packages": ["p"]}
    assert merged["b"] == {"imagename": "b", "elements": ["y"]}


def test_entry_without_name_continues_previous():
    merged = manifest.merge_entries([
        {"elements": ["first"]},
        {"imagename": "named", "elements": ["a"]},
        {"elements": ["b"], "types": ["tar"]},
    ])
    assert list(merged) == ["image", "named"]
    assert merged["image"]["elements"] == ["first"]
    assert merged["named"] == {"imagename": "named", "elements": ["a", "b"],
                               "types": ["tar"]}


def test_merge_does_not_modify_input():
    first = {"imagename": "a", "elements": ["x"], "environment": {"A": "1"}}
    manifest.merge_entries([first, {"imagename": "a", "elements": ["y"],
                                    "environment": {"A": "2"}}])
    assert first == {"imagename": "a", "elements": ["x"], "environment": {"A": "1"}}


def test_merge_across_files(tmp_path):
    one = yaml_file(tmp_path, "- {imagename: img, elements: [a]}\n", "one.yaml")
    two = yaml_file(tmp_path, "- {elements: [b]}\n- {imagename: other, elements: [c]}\n",
                    "two.yaml")
    configs = manifest.load_manifests([one, two], environ={})
    assert [os.path.basename(c.image_name) for c in configs] == ["img", "other"]
    assert configs[0].elements == ("a", "b")


# -- errors ------------------------------------------------------------------

def test_unknown_key_suggests_close_keys(tmp_path):
    path = yaml_file(tmp_path, """\
        - imagename: fine
          elements: [x]
        - imagename: broken
          image-sise: 3
        """)
    with pytest.raises(ConfigError) as err:
        manifest.load_manifests([path], environ={})
    message = str(err.value)
    assert str(path) in message
    assert "entry 2" in message and "'broken'" in message
    assert "'image-sise'" in message
    assert "'image-size'" in message


def test_unknown_key_without_close_match_lists_keys(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "- {qqqqqq: 1}\n")
    assert "'qqqqqq'" in str(err.value) and "imagename" in str(err.value)


def test_bad_value_names_file_entry_and_key(tmp_path):
    path = yaml_file(tmp_path, "- imagename: img\n  image-size: lots\n")
    with pytest.raises(ConfigError) as err:
        manifest.load_manifests([path], environ={})
    message = str(err.value)
    assert str(path) in message and "entry 1" in message and "'img'" in message
    assert "'image-size'" in message and "lots" in message and "number" in message


def test_bad_enum_lists_accepted_values(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "- {install-type: binary}\n")
    message = str(err.value)
    assert "'install-type'" in message and "source" in message and "package" in message
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "- {arch: sparc}\n")
    assert "sparc" in str(err.value) and "amd64" in str(err.value)


def test_environment_values_must_be_strings(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "- {imagename: e, environment: {DIB_RELEASE: 12}}\n")
    message = str(err.value)
    assert "'environment'" in message and "DIB_RELEASE" in message and "string" in message


def test_wrong_types(tmp_path):
    for text, key in (("- {elements: x}\n", "elements"),
                      ("- {ramdisk: maybe}\n", "ramdisk"),
                      ("- {debug-trace: -1}\n", "debug-trace"),
                      ("- {uncompressed: 1}\n", "uncompressed")):
        with pytest.raises(ConfigError) as err:
            load(tmp_path, text)
        assert f"'{key}'" in str(err.value)


def test_top_level_must_be_a_list(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "imagename: x\n")
    assert "list" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "- just a string\n")
    assert "entry 1" in str(err.value)


def test_broken_yaml_names_file_and_line(tmp_path):
    path = yaml_file(tmp_path, "- imagename: x\n  elements: [a\n- b\n")
    with pytest.raises(ConfigError) as err:
        manifest.load_manifests([path], environ={})
    assert f"{path}:" in str(err.value) and "invalid YAML" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        manifest.load_manifests([tmp_path / "nope.yaml"], environ={})
    assert "nope.yaml" in str(err.value)


def test_empty_file_means_no_images(tmp_path):
    assert load(tmp_path, "") == []


def test_value_the_parser_rejects_names_image_and_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "- {imagename: q, qemu-img-options: notkv}\n")
    message = str(err.value)
    assert "'q'" in message and "qemu-img-options" in message and "notkv" in message
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "- {imagename: q, environment: {FS_TYPE: zfs}}\n")
    assert "'q'" in str(err.value) and "FS_TYPE" in str(err.value)


# -- the diskimage-builder command ------------------------------------------

@pytest.fixture
def recorded_builds(monkeypatch):
    """Replace the pipeline: record each config, fail images named fail*."""
    calls = []

    def fake_run_build(config):
        name = os.path.basename(config.image_name)
        calls.append(config)
        if name.startswith("fail"):
            return 3
        if name.startswith("error"):
            raise ElementError("no such element")
        return 0
    import dib.pipeline
    monkeypatch.setattr(dib.pipeline, "run_build", fake_run_build)
    return calls


def test_cli_builds_each_image_in_order(tmp_path, recorded_builds, capsys):
    path = yaml_file(tmp_path, "- {imagename: one, elements: [a]}\n"
                               "- {imagename: two, elements: [b], ramdisk: true}\n")
    assert manifest_cli.main([str(path)]) == 0
    assert [os.path.basename(c.image_name) for c in recorded_builds] == ["one", "two"]
    assert [c.ramdisk for c in recorded_builds] == [False, True]
    assert not any(c.dry_run for c in recorded_builds)
    err = capsys.readouterr().err
    assert "disk-image-create -o one" in err and "ramdisk-image-create -o two" in err


def test_cli_last_failure_is_the_exit_status(tmp_path, recorded_builds, capsys):
    path = yaml_file(tmp_path, "- {imagename: fail1, elements: [a]}\n"
                               "- {imagename: error2, elements: [a]}\n"
                               "- {imagename: ok3, elements: [a]}\n")
    assert manifest_cli.main([str(path)]) == 1
    assert len(recorded_builds) == 3
    err = capsys.readouterr().err
    assert "image 'error2'" in err and "no such element" in err


def test_cli_stop_on_failure(tmp_path, recorded_builds, capsys):
    path = yaml_file(tmp_path, "- {imagename: ok0, elements: [a]}\n"
                               "- {imagename: fail1, elements: [a]}\n"
                               "- {imagename: ok2, elements: [a]}\n")
    assert manifest_cli.main(["--stop-on-failure", str(path)]) == 3
    assert [os.path.basename(c.image_name) for c in recorded_builds] == ["ok0", "fail1"]
    assert "--stop-on-failure" in capsys.readouterr().err


def test_cli_dry_run_marks_configs(tmp_path, recorded_builds, capsys):
    path = yaml_file(tmp_path, "- {imagename: one, elements: [a]}\n")
    assert manifest_cli.main(["--dry-run", str(path)]) == 0
    assert recorded_builds[0].dry_run is True
    assert "# image 'one': disk-image-create -o one a" in capsys.readouterr().out


def test_cli_bad_manifest_builds_nothing(tmp_path, recorded_builds, capsys):
    path = yaml_file(tmp_path, "- {imagename: one, elements: [a]}\n- {typo: 1}\n")
    assert manifest_cli.main([str(path)]) == 2
    assert recorded_builds == []
    err = capsys.readouterr().err
    assert "'typo'" in err and "Traceback" not in err


def test_cli_dry_run_prints_real_plans(tmp_path, elements_env, capsys):
    elements_env.add("base", hooks={"install": ["01-base"]})
    elements_env.os_element("test-os", hooks={"root": ["10-root"]})
    elements_env.add("extra", hooks={"install": ["50-extra"]})
    path = yaml_file(tmp_path, "- {imagename: one, elements: [test-os]}\n"
                               "- {imagename: two, elements: [test-os, extra], "
                               "skip-base: true}\n")
    assert manifest_cli.main(["--dry-run", str(path)]) == 0
    out = capsys.readouterr().out
    first, second = out.split("# image 'two'")
    assert "elements: base test-os" in first and "01-base" in first
    assert "elements: test-os extra" in second and "50-extra" in second
    assert "01-base" not in second


def test_cli_help_lists_keys(capsys):
    with pytest.raises(SystemExit):
        manifest_cli.main(["--help"])
    out = capsys.readouterr().out
    for key in manifest.known_keys():
        assert f"  {key}:" in out
    assert "--stop-on-failure" in out and "--dry-run" in out
