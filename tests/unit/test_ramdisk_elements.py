"""How the engine treats the ramdisk elements and no-final-image."""
from __future__ import annotations

from dib.config.cli import build_parser, config_from_args
from dib.pipeline import artifacts
from dib.pipeline.prepare import prepare


def prepared(argv: list[str], ramdisk: bool = False):
    prog = "ramdisk-image-create" if ramdisk else "disk-image-create"
    args = build_parser(prog, "test").parse_args(argv)
    return prepare(config_from_args(args, environ={}, argv=argv, ramdisk=ramdisk))


def output_names(p) -> list[str]:
    return sorted(o.name for o in artifacts.selected_outputs(p))


def test_no_final_image_is_a_shipped_element_that_drops_the_disk():
    with_it = prepared(["-t", "qcow2,tar", "debian-minimal", "vm", "no-final-image"])
    assert "no-final-image" in with_it.resolution.names
    assert not artifacts.final_image_wanted(with_it)
    assert output_names(with_it) == ["tar"]
    without = prepared(["-t", "qcow2,tar", "debian-minimal", "vm"])
    assert artifacts.final_image_wanted(without)
    assert output_names(without) == ["qcow2", "tar"]


def test_ramdisk_build_puts_the_ramdisk_element_first():
    p = prepared(["debian-minimal"], ramdisk=True)
    names = p.resolution.names
    assert names[0] == "ramdisk"
    assert {"ramdisk-base", "package-installs", "debian-minimal"} <= set(names)
    assert not artifacts.final_image_wanted(p)
    assert not artifacts.needs_disk(p)


def test_ramdisk_element_chosen_by_flag():
    p = prepared(["--ramdisk-element", "dracut-ramdisk", "debian-minimal"], ramdisk=True)
    assert p.resolution.names[0] == "dracut-ramdisk"
    assert "ramdisk" not in p.resolution.names
