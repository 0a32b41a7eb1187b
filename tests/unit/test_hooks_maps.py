"""pkg-map and svc-map, loaded from hooks/ and run as commands."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HOOKS = Path(__file__).resolve().parents[2] / "hooks"


def load(name):
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(HOOKS / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    # No __pycache__ next to the helpers: hooks/ is copied into images.
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


pkg_map = load("pkg-map")
svc_map = load("svc-map")

MAP = {
    "release": {"debian": {"bullseye": {"growroot": "cloud-initramfs-growroot"}},
                "centos": {"9": {"grub": "grub2-efi-x64 shim-x64"}}},
    "distro": {"ubuntu": {"growroot": "cloud-initramfs-growroot", "web": "apache2"}},
    "family": {"redhat": {"growroot": "cloud-utils-growpart", "web": "httpd"},
               "debian": {"web": "apache2-bin"}},
    "default": {"growroot": "", "web": "webserver", "grub": "grub-pc"},
}


def run_pkg_map(tmp_path, *args, env=None):
    mapdir = tmp_path / "pkg-map"
    mapdir.mkdir(exist_ok=True)
    (mapdir / "el").write_text(json.dumps(MAP))
    full_env = {"PATH": os.environ["PATH"], "DIB_PKG_MAP_DIR": str(mapdir)}
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(HOOKS / "pkg-map"), *args],
                          capture_output=True, text=True, env=full_env)


# ------------------------------------------------------------------ pkg-map

@pytest.mark.parametrize("distro,release,name,expected", [
    ("debian", "bullseye", "growroot", ["cloud-initramfs-growroot"]),  # release
    ("ubuntu", "noble", "growroot", ["cloud-initramfs-growroot"]),     # distro
    ("rocky", "9", "growroot", ["cloud-utils-growpart"]),              # family (rocky)
    ("almalinux", "9", "web", ["httpd"]),                              # family (alma)
    ("openeuler", "22", "web", ["httpd"]),                             # family (openeuler)
    ("debian", "bookworm", "web", ["apache2-bin"]),                    # family over default
    ("debian", "bookworm", "growroot", []),                            # empty drops
    ("gentoo", "x", "web", ["webserver"]),                             # default
    ("centos", "9-stream", "grub", ["grub2-efi-x64", "shim-x64"]),     # stream -> major
])
def test_lookup_order(distro, release, name, expected):
    name_map = pkg_map.build_name_map(MAP, distro, release)
    assert pkg_map.map_names(name_map, [name], missing_ok=False) == (expected, [])


def test_release_beats_distro_beats_family_beats_default():
    data = {"release": {"ubuntu": {"noble": {"p": "r"}}}, "distro": {"ubuntu": {"p": "d"}},
            "family": {"debian": {"p": "f"}}, "default": {"p": "x"}}
    assert pkg_map.build_name_map(data, "ubuntu", "noble")["p"] == "r"
    assert pkg_map.build_name_map(data, "ubuntu", "jammy")["p"] == "d"
    assert pkg_map.build_name_map(data, "debian", "bookworm")["p"] == "f"
    assert pkg_map.build_name_map(data, "opensuse", "15")["p"] == "x"


def test_families():
    assert pkg_map.os_family("rocky") == "redhat"
    assert pkg_map.os_family("ubuntu") == "debian"
    assert pkg_map.os_family("opensuse") == "suse"
    assert pkg_map.os_family("gentoo") == "gentoo"
    assert pkg_map.os_family("plan9") is None


def test_cli_maps_with_prefix(tmp_path):
    proc = run_pkg_map(tmp_path, "--element", "el", "--distro", "rocky", "--release", "9",
                       "--prefix", "-", "web", "growroot")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["-httpd", "-cloud-utils-growpart"]


def test_cli_reads_distro_and_release_from_env(tmp_path):
    proc = run_pkg_map(tmp_path, "--element", "el", "growroot",
                       env={"DISTRO_NAME": "debian", "DIB_RELEASE": "bullseye"})
    assert proc.stdout.split() == ["cloud-initramfs-growroot"]


def test_cli_unmapped_name_is_error_1(tmp_path):
    proc = run_pkg_map(tmp_path, "--element", "el", "--distro", "debian", "nosuch")
    assert proc.returncode == 1
    assert "nosuch" in proc.stderr


def test_cli_unmapped_name_missing_ok_passes_through(tmp_path):
    proc = run_pkg_map(tmp_path, "--element", "el", "--distro", "debian", "--missing-ok",
                       "nosuch", "growroot")
    assert proc.returncode == 0
    assert proc.stdout.split() == ["nosuch"]


def test_cli_no_map_exits_2(tmp_path):
    proc = run_pkg_map(tmp_path, "--element", "absent", "--distro", "debian", "x")
    assert proc.returncode == 2


def test_cli_no_map_missing_ok_prints_names(tmp_path):
    proc = run_pkg_map(tmp_path, "--element", "absent", "--distro", "debian",
                       "--missing-ok", "--prefix", "-", "x", "y")
    assert proc.returncode == 0
    assert proc.stdout.split() == ["-x", "-y"]


def test_cli_errors(tmp_path):
    assert run_pkg_map(tmp_path, "x").returncode == 1                        # no element
    assert run_pkg_map(tmp_path, "--element", "el", "x").returncode == 1     # no distro
    map_file = tmp_path / "m.json"
    map_file.write_text("{not json")
    assert run_pkg_map(tmp_path, "--pkg-map", str(map_file), "--distro", "debian",
                       "x").returncode == 1
    assert run_pkg_map(tmp_path, "--pkg-map", str(map_file), "--element", "el",
                       "--distro", "debian", "x").returncode == 1


def test_cli_explicit_pkg_map_file(tmp_path):
    map_file = tmp_path / "m.json"
    map_file.write_text(json.dumps({"default": {"a": "b c"}}))
    proc = run_pkg_map(tmp_path, "--pkg-map", str(map_file), "--distro", "fedora", "a")
    assert proc.stdout.split() == ["b", "c"]


# ------------------------------------------------------------------ svc-map

SVC = {"messaging": {"default": "rabbitmq-server", "redhat": "rabbitmq",
                     "gentoo": "net-misc/rabbitmq-server"},
       "web": {"debian": "apache2", "default": "httpd"},
       "plain": None}


@pytest.mark.parametrize("distro,service,expected", [
    ("rocky", "messaging", "rabbitmq"),            # family incl. rocky
    ("openeuler", "messaging", "rabbitmq"),
    ("gentoo", "messaging", "net-misc/rabbitmq-server"),
    ("ubuntu", "messaging", "rabbitmq-server"),    # default
    ("debian", "web", "apache2"),                  # distro
    ("fedora", "web", "httpd"),
    ("fedora", "plain", "plain"),                  # no mapping keeps name
])
def test_svc_resolve(distro, service, expected):
    assert svc_map.resolve(service, SVC[service], distro) == expected


def test_svc_merge_and_duplicates():
    merged = svc_map.merge([("a", {"messaging": SVC["messaging"]}), ("b", {"web": SVC["web"]})],
                           "centos")
    assert merged == {"messaging": "rabbitmq", "web": "httpd"}
    with pytest.raises(svc_map.SvcMapError) as exc:
        svc_map.merge([("a", {"web": "x"}), ("b", {"web": "y"})], "debian")
    assert "a" in str(exc.value) and "b" in str(exc.value) and "web" in str(exc.value)


def test_svc_merge_cli_and_lookup_cli(tmp_path):
    yaml = pytest.importorskip("yaml")
    el1, el2 = tmp_path / "el1", tmp_path / "el2"
    el1.mkdir()
    el2.mkdir()
    (el1 / "svc-map").write_text(yaml.safe_dump({"messaging": SVC["messaging"]}))
    (el2 / "svc-map").write_text(yaml.safe_dump({"web": SVC["web"]}))
    out = tmp_path / "mnt" / "usr" / "share" / "svc-map" / "services"
    env = {"PATH": os.environ["PATH"], "DISTRO_NAME": "almalinux",
           "IMAGE_ELEMENT_YAML": yaml.safe_dump({"el1": str(el1), "el2": str(el2)})}
    proc = subprocess.run([sys.executable, str(HOOKS / "svc-map"), "--merge", str(out)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == {"messaging": "rabbitmq", "web": "httpd"}

    root = tmp_path / "root"
    (root / "usr/lib/systemd/system").mkdir(parents=True)
    (root / "usr/lib/systemd/system/web.service").write_text("")
    env.update(DIB_SVC_MAP_FILE=str(out), DIB_SVC_MAP_ROOT=str(root))
    proc = subprocess.run([sys.executable, str(HOOKS / "svc-map"), "messaging", "web", "other"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    # web has a unit of its own name in the image, so it is kept.
    assert proc.stdout.split() == ["rabbitmq", "web", "other"]


def test_svc_lookup_without_file(tmp_path):
    env = {"PATH": os.environ["PATH"], "DIB_SVC_MAP_FILE": str(tmp_path / "none"),
           "DIB_SVC_MAP_ROOT": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(HOOKS / "svc-map"), "x"],
                          capture_output=True, text=True, env=env)
    assert proc.stdout.split() == ["x"]


def test_helpers_use_stdlib_only():
    for name in ("pkg-map", "svc-map", "package-installs-v2"):
        text = (HOOKS / name).read_text()
        assert text.startswith("#!/usr/bin/env python3\n")
        top_level = [line for line in text.splitlines()
                     if line.startswith(("import ", "from "))]
        assert not any("yaml" in line for line in top_level), name
