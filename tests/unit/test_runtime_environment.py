"""The environment a build gives its hooks (dib.runtime.environment)."""
from __future__ import annotations

from pathlib import Path

import pytest

from dib.config.cli import build_parser, config_from_args
from dib.elements.resolve import Resolution
from dib.runtime.environment import base_environment
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
