"""``dib test`` takes the build settings a case honours from the settings registry."""
from __future__ import annotations

import pytest

from dib.cli.main import make_parser
from dib.cli.test import case_settings
from dib.config.settings import by_name
from dib.errors import ConfigError
from dib.testing.functional import DEFAULT_HOOK_TIMEOUT


def _settings(argv: list[str], environ: dict[str, str]) -> dict:
    return case_settings(make_parser().parse_args(["test", *argv]), environ)


def test_a_hung_hook_is_stopped_by_default_where_a_build_would_wait():
    value = _settings([], {})
    assert value["hook_timeout"] == DEFAULT_HOOK_TIMEOUT > 0
    assert by_name("hook_timeout").default_value() == 0


def test_the_flag_wins_over_the_environment_which_wins_over_the_default(tmp_path):
    environ = {"DIB_HOOK_TIMEOUT": "30", "DIB_CACHE_DIR": str(tmp_path / "env-cache"),
               "DIB_NO_CACHE": "1", "DIB_CACHE_MAX_SIZE": "20G"}
    assert _settings([], environ) == {"hook_timeout": 30, "cache_dir": str(tmp_path / "env-cache"),
                                      "no_cache": True, "cache_max_size": 20 << 30}
    flagged = _settings(["--hook-timeout", "0", "--cache-dir", str(tmp_path / "flag-cache"),
                         "--cache-max-size", "1.5G"], environ)
    assert flagged["hook_timeout"] == 0
    assert flagged["cache_dir"] == str(tmp_path / "flag-cache")
    assert flagged["cache_max_size"] == 3 << 29
    assert _settings([], {})["cache_max_size"] == 10 << 30


def test_a_cache_size_that_is_no_size_names_the_variable():
    with pytest.raises(ConfigError, match="DIB_CACHE_MAX_SIZE.*not a size"):
        _settings([], {"DIB_CACHE_MAX_SIZE": "big"})


def test_a_bad_value_names_the_flag_or_the_variable():
    with pytest.raises(ConfigError, match="--hook-timeout.*not a whole number"):
        _settings(["--hook-timeout", "soon"], {})
    with pytest.raises(ConfigError, match="DIB_HOOK_TIMEOUT.*must be 0 or more"):
        _settings([], {"DIB_HOOK_TIMEOUT": "-5"})
