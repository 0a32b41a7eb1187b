"""package-installs-v2, cache-url and dib-init-system run with stub commands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HOOKS = Path(__file__).resolve().parents[2] / "hooks"

RECORD = """#!/bin/bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
exit ${STUB_RC:-0}
"""


@pytest.fixture
def env(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "install-packages"
    stub.write_text(RECORD)
    stub.chmod(0o755)
    # The real pkg-map, reading maps from a temp dir.
    (bindir / "pkg-map").symlink_to(HOOKS / "pkg-map")
    mapdir = tmp_path / "pkg-map"
    mapdir.mkdir()
    (mapdir / "growy").write_text(json.dumps(
        {"default": {"growroot": ""}, "family": {"debian": {"web": "apache2 apache2-utils"}}}))
    return {"PATH": f"{bindir}:{os.environ['PATH']}", "STUB_LOG": str(tmp_path / "log"),
            "DIB_PKG_MAP_DIR": str(mapdir), "DISTRO_NAME": "debian",
            "DIB_RELEASE": "bookworm"}


def write_squash(tmp_path, data):
    path = tmp_path / "package-installs.json"
    path.write_text(json.dumps(data))
    return path


def run_v2(env, *args):
    return subprocess.run([sys.executable, str(HOOKS / "package-installs-v2"), *args],
                          capture_output=True, text=True, env=env)


def calls(env):
    log = Path(env["STUB_LOG"])
    return log.read_text().splitlines() if log.exists() else []


DATA = {
    "install.d": {"install": [["curl", "plain"], ["growroot", "growy"], ["web", "growy"],
                              ["curl", "other"]],
                  "uninstall": [["nano", "plain"]]},
    "pre-install.d": {"install": [], "uninstall": []},
}


def test_installs_mapped_names_once(tmp_path, env):
    proc = run_v2(env, "--phase", "install.d", str(write_squash(tmp_path, DATA)))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    # curl: element without a map keeps the name; growroot maps to nothing;
    # web maps to two packages; duplicates go.
    assert calls(env) == ["install-packages curl apache2 apache2-utils"]


def test_uninstall(tmp_path, env):
    proc = run_v2(env, "--phase", "install.d", "--uninstall", str(write_squash(tmp_path, DATA)))
    assert proc.returncode == 0
    assert calls(env) == ["install-packages -e nano"]


def test_nothing_for_phase(tmp_path, env):
    path = write_squash(tmp_path, DATA)
    for phase in ("pre-install.d", "post-install.d"):
        proc = run_v2(env, "--phase", phase, str(path))
        assert proc.returncode == 0
    assert calls(env) == []


def test_dry_run_prints(tmp_path, env):
    proc = run_v2(env, "--phase", "install.d", "-n", str(write_squash(tmp_path, DATA)))
    assert proc.returncode == 0
    assert "install-packages curl apache2 apache2-utils" in proc.stdout
    assert calls(env) == []


def test_missing_file_is_quiet(tmp_path, env):
    proc = run_v2(env, "--phase", "install.d", str(tmp_path / "absent.json"))
    assert proc.returncode == 0
    assert calls(env) == []


def test_install_failure(tmp_path, env):
    env["STUB_RC"] = "3"
    proc = run_v2(env, "--phase", "install.d", str(write_squash(tmp_path, DATA)))
    assert proc.returncode == 1


def test_pkg_map_error_fails(tmp_path, env):
    mapdir = Path(env["DIB_PKG_MAP_DIR"])
    (mapdir / "broken").write_text("{nope")
    data = {"install.d": {"install": [["x", "broken"]], "uninstall": []}}
    proc = run_v2(env, "--phase", "install.d", str(write_squash(tmp_path, data)))
    assert proc.returncode == 1
    assert calls(env) == []


# ------------------------------------------- plain package-installs-<element> lists

def write_list(directory: Path, element: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"package-installs-{element}"
    path.write_text(text)
    return path


def test_plain_list_installs_every_name_mapped(tmp_path, env):
    phase_dir = tmp_path / "install.d"
    write_list(phase_dir, "growy", "# the web server\nweb\n\n  growroot  \n-gcc # build only\n")
    write_list(phase_dir, "plain", "nano\n")
    proc = run_v2(env, "--phase", "install.d", "--legacy-dir", str(phase_dir),
                  str(write_squash(tmp_path, DATA)))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    # A '-' name is installed for the phase too; growroot maps to nothing for
    # growy; the plain lists come before the squashed list, duplicates go.
    assert calls(env) == ["install-packages apache2 apache2-utils gcc nano curl"]


def test_plain_list_dash_names_are_removed_by_the_uninstall_run(tmp_path, env):
    phase_dir = tmp_path / "install.d"
    write_list(phase_dir, "growy", "web\n-web\n-gcc\n")
    proc = run_v2(env, "--phase", "install.d", "--uninstall", "--legacy-dir", str(phase_dir),
                  str(write_squash(tmp_path, DATA)))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert calls(env) == ["install-packages -e apache2 apache2-utils gcc nano"]


def test_plain_list_without_the_squashed_file(tmp_path, env):
    phase_dir = tmp_path / "post-install.d"
    write_list(phase_dir, "plain", "curl\n")
    proc = run_v2(env, "--phase", "post-install.d", "--legacy-dir", str(phase_dir),
                  str(tmp_path / "absent.json"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert calls(env) == ["install-packages curl"]


def test_plain_list_through_a_link_is_read(tmp_path, env):
    # install-types links install.d/<element>-<type>-install/* into install.d.
    phase_dir = tmp_path / "install.d"
    write_list(phase_dir / "plain-package-install", "plain", "glean\n")
    write_list(phase_dir / "plain-source-install", "plain", "git\n")
    (phase_dir / "package-installs-plain").symlink_to(
        "plain-package-install/package-installs-plain")
    proc = run_v2(env, "--phase", "install.d", "--legacy-dir", str(phase_dir),
                  str(tmp_path / "absent.json"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert calls(env) == ["install-packages glean"]


def test_plain_list_with_a_bare_dash_is_named(tmp_path, env):
    phase_dir = tmp_path / "install.d"
    bad = write_list(phase_dir, "plain", "curl\n-\n")
    proc = run_v2(env, "--phase", "install.d", "--legacy-dir", str(phase_dir),
                  str(tmp_path / "absent.json"))
    assert proc.returncode == 1
    assert f"{bad} line 2" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert calls(env) == []


# ---------------------------------------------------------------- cache-url

CURL = r"""#!/bin/bash
echo "curl $*" >> "$STUB_LOG"
out=
while [ $# -gt 0 ]; do
    case "$1" in -o) out=$2; shift 2;; *) shift;; esac
done
if [ "$STUB_CODE" = 200 ]; then echo "fresh content" > "$out"; fi
printf '%s' "$STUB_CODE"
"""


@pytest.fixture
def curl_env(tmp_path):
    bindir = tmp_path / "cbin"
    bindir.mkdir()
    (bindir / "curl").write_text(CURL)
    (bindir / "curl").chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}", "STUB_LOG": str(tmp_path / "clog")}


def cache_url(env, *args, code="200"):
    e = dict(env, STUB_CODE=code)
    return subprocess.run([str(HOOKS / "cache-url"), *args], capture_output=True, text=True,
                          env=e)


def test_cache_url_first_download(tmp_path, curl_env):
    dest = tmp_path / "cache" / "file"
    proc = cache_url(curl_env, "http://example.invalid/f", str(dest))
    assert proc.returncode == 0, proc.stderr
    assert dest.read_text() == "fresh content\n"
    assert " -z " not in Path(curl_env["STUB_LOG"]).read_text()


def test_cache_url_conditional_and_not_modified(tmp_path, curl_env):
    dest = tmp_path / "file"
    dest.write_text("cached\n")
    proc = cache_url(curl_env, "http://example.invalid/f", str(dest), code="304")
    assert proc.returncode == 0
    assert dest.read_text() == "cached\n"
    assert f"-z {dest}" in Path(curl_env["STUB_LOG"]).read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cache-url")]


def test_cache_url_force(tmp_path, curl_env):
    dest = tmp_path / "file"
    dest.write_text("cached\n")
    proc = cache_url(curl_env, "-f", "http://example.invalid/f", str(dest))
    assert proc.returncode == 0
    log = Path(curl_env["STUB_LOG"]).read_text()
    assert "no-cache" in log and " -z " not in log
    assert dest.read_text() == "fresh content\n"


def test_cache_url_404_is_44_and_keeps_copy(tmp_path, curl_env):
    dest = tmp_path / "file"
    dest.write_text("cached\n")
    proc = cache_url(curl_env, "http://example.invalid/f", str(dest), code="404")
    assert proc.returncode == 44
    assert dest.read_text() == "cached\n"


def test_cache_url_other_error(tmp_path, curl_env):
    proc = cache_url(curl_env, "http://example.invalid/f", str(tmp_path / "f"), code="500")
    assert proc.returncode == 1


def test_cache_url_usage(curl_env):
    assert cache_url(curl_env, "only-one").returncode == 1


# ----------------------------------------------------------- dib-init-system

def test_dib_init_system_from_env():
    proc = subprocess.run([str(HOOKS / "dib-init-system")], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "DIB_INIT_SYSTEM": "openrc"})
    assert proc.stdout.strip() == "openrc"


def test_dib_init_system_detects_systemd(tmp_path):
    (tmp_path / "lib/systemd").mkdir(parents=True)
    (tmp_path / "lib/systemd/systemd").write_text("")
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin/init").symlink_to(tmp_path / "lib/systemd/systemd")
    proc = subprocess.run([str(HOOKS / "dib-init-system")], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "DIB_INIT_SYSTEM_ROOT": str(tmp_path)})
    assert proc.stdout.strip() == "systemd"
