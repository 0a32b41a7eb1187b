"""The environment a build gives its hooks (dib.runtime.environment)."""
from __future__ import annotations

from pathlib import Path

import pytest

from dib.config.cli import build_parser, config_from_args
from dib.elements.resolve import Resolution
from dib.runtime.environment import HOOK_DIB_VARIABLES, base_environment, engine_variables
from dib.runtime.workspace import Workspace


def hook_env(argv: list[str], environ: dict[str, str] | None = None) -> dict[str, str]:
    parser = build_parser("disk-image-create", "test")
    config = config_from_args(parser.parse_args(argv), environ=environ or {}, argv=argv)
    return base_environment(config, workspace=Workspace(Path("/nonexistent/ws")),
                            resolution=Resolution(requested=(), elements=()),
                            elements_path=[], extra={})


@pytest.mark.parametrize("argv, environ, expected", [
    (["e"], {}, "0"),
    (["--checksum", "e"], {}, "md5,sha256"),
    (["e"], {"DIB_CHECKSUM": "1"}, "md5,sha256"),
    (["e"], {"DIB_CHECKSUM": "sha256"}, "sha256"),
])
def test_hooks_always_see_dib_checksum(argv, environ, expected):
    # Hooks that write their own outputs read it under "set -u", as in DIB.
    assert hook_env(argv, environ)["DIB_CHECKSUM"] == expected


@pytest.mark.parametrize("ramdisk", [False, True])
def test_hook_dib_variables_lists_every_variable_the_build_sets(ramdisk):
    # dib lint lets elements read these without documenting them, so the
    # list must follow what base_environment really exports.
    parser = build_parser("disk-image-create", "test")
    config = config_from_args(parser.parse_args(["e"]), environ={}, argv=["e"],
                              ramdisk=ramdisk)
    env = base_environment(config, workspace=Workspace(Path("/nonexistent/ws")),
                           resolution=Resolution(requested=(), elements=()),
                           elements_path=[], extra={})
    exported = {k for k in env if k.startswith("DIB_")}
    assert exported <= set(HOOK_DIB_VARIABLES)
    if ramdisk:
        assert exported == set(HOOK_DIB_VARIABLES)


def test_engine_variables_include_the_settings_variables():
    names = engine_variables()
    assert {"DIB_IMAGE_SIZE", "DIB_BLOCK_DEVICE_CONFIG", "DIB_DEBUG_TRACE"} <= names
    assert "DIB_RELEASE" not in names    # an operating-system element sets it


def test_author_guide_names_every_variable_the_build_sets():
    # The guide tells element authors which variables need no README entry.
    guide = Path(__file__).resolve().parents[2] / "docs" / "element-author-guide.md"
    if not guide.is_file():
        pytest.skip("no docs in this tree")
    text = guide.read_text()
    assert [name for name in HOOK_DIB_VARIABLES if f"`{name}`" not in text] == []


def test_reproducible_build_records_no_cache_locations():
    """Two builds of one image with their own caches record the same
    dib_environment and dib_arguments when SOURCE_DATE_EPOCH is set."""
    recorded = []
    for n in (1, 2):
        argv = ["--image-cache", f"/i{n}", "-o", "X", "debian-minimal"]
        env = hook_env(argv, {"SOURCE_DATE_EPOCH": "1700000000", "DIB_CACHE_DIR": f"/c{n}",
                              "DIB_RELEASE": "bookworm"})
        recorded.append((env["DIB_ENV"], env["DIB_ARGS"]))
        assert env["DIB_IMAGE_CACHE"] == f"/i{n}"      # hooks still see it
    assert recorded[0] == recorded[1]
    assert "DIB_RELEASE=bookworm" in recorded[0][0]
    assert recorded[0][1] == "-o X debian-minimal"


def test_without_source_date_epoch_dib_env_keeps_every_variable():
    env = hook_env(["--image-cache", "/i", "e"], {"DIB_CACHE_DIR": "/c"})
    assert "DIB_IMAGE_CACHE=/i" in env["DIB_ENV"] and "DIB_CACHE_DIR=/c" in env["DIB_ENV"]
