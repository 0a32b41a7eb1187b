"""The shipped elements: format checks, and a few host-side hooks run in a temp dir."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from dib.elements import package_installs
from dib.elements.phases import HOOK_PHASES

ROOT = Path(__file__).resolve().parents[2]
ELEMENTS = ROOT / "elements"
PHASES = tuple(p.directory for p in HOOK_PHASES)
MINE = ("base", "dpkg", "debootstrap", "debian-minimal", "debian", "package-installs",
        "pkg-map", "svc-map", "install-static", "install-bin", "install-types",
        "source-repositories", "manifests", "cache-url", "dib-init-system", "dib-python",
        "sysprep", "openssh-server", "vm", "bootloader", "block-device-mbr",
        "block-device-gpt", "block-device-efi", "ramdisk-base", "ramdisk", "dracut-ramdisk",
        "baremetal", "select-boot-kernel-initrd", "no-final-image", "dhcp-all-interfaces",
        "ibft-interfaces", "ensure-venv", "simple-init", "epel", "selinux-permissive",
        "runtime-ssh-host-keys", "dynamic-login", "modprobe", "cloud-init",
        "cloud-init-datasources", "growroot", "devuser", "enable-serial-console",
        "journal-to-console", "stable-interface-names", "disable-nouveau", "local-config",
        "pip-and-virtualenv", "element-manifest", "dracut-regenerate", "iscsi-boot",
        "ubuntu-common", "ubuntu-minimal", "ubuntu")


def element_dirs():
    out = []
    for name in MINE:
        out.append(ELEMENTS / name)
        tests = ELEMENTS / name / "test-elements"
        if tests.is_dir():
            out.extend(sorted(p for p in tests.iterdir() if p.is_dir()))
    return out


@pytest.mark.parametrize("el", element_dirs(), ids=lambda p: str(p.relative_to(ELEMENTS)))
def test_element_format(el):
    assert (el / "README.rst").is_file()
    for phase in PHASES:
        d = el / phase
        if not d.is_dir():
            continue
        for hook in d.iterdir():
            if hook.is_dir():
                continue
            text = hook.read_text()
            assert hook.stat().st_mode & stat.S_IXUSR, f"{hook} is not executable"
            if text.startswith("#!/bin/bash"):
                assert "set -eu" in text and "set -o pipefail" in text, hook
                assert "DIB_DEBUG_TRACE" in text, hook
            assert "\t" not in text, f"tab in {hook}"
    envd = el / "environment.d"
    if envd.is_dir():
        for f in envd.iterdir():
            assert not f.stat().st_mode & stat.S_IXUSR, f"{f} must not be executable"
            assert "set -x" not in f.read_text()
            subprocess.run(["bash", "-n", str(f)], check=True)
    if (el / "package-installs.yaml").exists():
        data = yaml.safe_load((el / "package-installs.yaml").read_text())
        package_installs.validate(data, element=el.name, path=str(el / "package-installs.yaml"))
    if (el / "pkg-map").exists():
        json.loads((el / "pkg-map").read_text())
    if (el / "svc-map").exists():
        yaml.safe_load((el / "svc-map").read_text())
    for name in ("element-deps", "element-provides"):
        if (el / name).exists():
            assert (el / name).read_text().endswith("\n")


# Elements no test-element can build on this machine: the Ubuntu archive is
# out of reach (tests/functional/test_ubuntu.py builds them given a mirror).
BUILT_ELSEWHERE = ("ubuntu-common", "ubuntu-minimal", "ubuntu")


def test_every_element_with_hooks_has_a_test_element():
    """Each element with hooks is built by a test-element: its own, or one it
    shares with other elements (named in that case's element-deps)."""
    in_cases = set()
    for deps in ELEMENTS.glob("*/test-elements/*/element-deps"):
        in_cases.update(deps.read_text().split())
    for name in MINE:
        el = ELEMENTS / name
        if name in BUILT_ELSEWHERE or not any((el / phase).is_dir() for phase in PHASES):
            continue
        assert (el / "test-elements").is_dir() or name in in_cases, name


@pytest.mark.parametrize("name", ["block-device-mbr", "block-device-gpt", "block-device-efi"])
def test_block_device_layouts(name):
    config = yaml.safe_load((ELEMENTS / name / "block-device-default.yaml").read_text())
    assert config[0]["local_loop"]["name"] == "image0"
    assert (ELEMENTS / name / "element-provides").read_text().split() == ["block-device"]
    if name == "block-device-efi":
        esp = config[1]["partitioning"]["partitions"][0]
        assert esp["type"] == "EF00" and esp["mkfs"]["type"] == "vfat"
        assert int(esp["size"].rstrip("MiB")) >= 260


def test_no_network_host_is_written_into_elements_or_helpers():
    """Mirrors come from the host's apt sources: no http(s) URL may name a
    host, except the reserved example domains used in documentation."""
    url = re.compile(r"https?://([A-Za-z0-9.-]+)")
    for path in list(ELEMENTS.rglob("*")) + list((ROOT / "hooks").iterdir()):
        if path.is_file():
            for host in url.findall(path.read_text(errors="replace")):
                assert host.endswith(("example.org", "example.com", "example.invalid")), \
                    (path, host)


def run_hook(rel, env):
    full = {"PATH": os.environ["PATH"], "HOME": env.get("HOME", "/tmp")}
    full.update(env)
    return subprocess.run([str(ELEMENTS / rel)], capture_output=True, text=True, env=full)


def source_env(rel, env):
    """Source an environment.d file; return the resulting variables."""
    full = {"PATH": os.environ["PATH"]}
    full.update(env)
    out = subprocess.run(["bash", "-c", f'source "{ELEMENTS / rel}" && env -0'],
                         capture_output=True, env=full, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def test_debian_minimal_environment_and_sources(tmp_path):
    env = source_env("debian-minimal/environment.d/10-debian-minimal.bash", {
        "DIB_DISTRIBUTION_MIRROR": "http://mirror.invalid/debian",
        "DIB_DEBIAN_SECURITY_MIRROR": "http://mirror.invalid/debian-security",
        "DIB_DEBIAN_COMPONENTS": "main,contrib"})
    assert env["DISTRO_NAME"] == "debian" and env["DIB_RELEASE"] == "bookworm"
    assert env["DIB_INIT_SYSTEM"] == "systemd"
    assert "systemd-sysv" in env["DIB_DEBOOTSTRAP_INCLUDE"]
    conf = env["DIB_APT_SOURCES_CONF"].splitlines()
    assert conf == [
        "default:deb http://mirror.invalid/debian bookworm main contrib",
        "updates:deb http://mirror.invalid/debian bookworm-updates main contrib",
        "security:deb http://mirror.invalid/debian-security bookworm-security main contrib"]

    target = tmp_path / "root"
    lists = target / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    (lists / "x_dists_bookworm_main_binary-amd64_Packages").write_text("")
    conf_text = env["DIB_APT_SOURCES_CONF"] + "\n\nodd:deb [trusted=yes] http://local.invalid/ ./\n"
    proc = run_hook("debian-minimal/root.d/75-debian-minimal-baseinstall",
                    {"TARGET_ROOT": str(target), "DIB_APT_SOURCES_CONF": conf_text})
    assert proc.returncode == 0, proc.stderr
    sources_dir = target / "etc/apt/sources.list.d"
    names = sorted(p.name for p in sources_dir.iterdir())
    assert names == ["debian.sources", "odd.list"]
    text = (sources_dir / "debian.sources").read_text()
    assert "Suites: bookworm-security" in text and "Components: main contrib" in text
    assert text.count("Types: deb") == 3


def test_debian_minimal_unstable_has_only_main_suite():
    env = source_env("debian-minimal/environment.d/10-debian-minimal.bash", {
        "DIB_RELEASE": "unstable", "DIB_DISTRIBUTION_MIRROR": "http://m.invalid/d",
        "DIB_DEBIAN_SECURITY_MIRROR": "http://m.invalid/s"})
    assert env["DIB_APT_SOURCES_CONF"].splitlines() == [
        "default:deb http://m.invalid/d unstable main"]


def test_dpkg_block_daemons_idempotent_and_undone(tmp_path):
    (tmp_path / "usr/sbin").mkdir(parents=True)
    ssd = tmp_path / "usr/sbin/start-stop-daemon"
    ssd.write_text("real\n")
    env = {"TARGET_ROOT": str(tmp_path)}
    for _ in range(2):
        assert run_hook("dpkg/root.d/50-block-daemons", env).returncode == 0
    assert (tmp_path / "usr/sbin/start-stop-daemon.REAL").read_text() == "real\n"
    assert "blocked" in ssd.read_text()
    assert "exit 101" in (tmp_path / "usr/sbin/policy-rc.d").read_text()
    assert run_hook("dpkg/cleanup.d/40-unblock-daemons", env).returncode == 0
    assert ssd.read_text() == "real\n"
    assert not (tmp_path / "usr/sbin/policy-rc.d").exists()


def test_manifests_cleanup(tmp_path):
    target = tmp_path / "root"
    (target / "etc/dib-manifests").mkdir(parents=True)
    (target / "etc/dib-manifests/dib-manifest-dpkg-img").write_text("{}")
    save = tmp_path / "out" / "img.d"
    env = {"TARGET_ROOT": str(target), "DIB_MANIFEST_IMAGE_DIR": "/etc/dib-manifests",
           "DIB_MANIFEST_SAVE_DIR": str(save) + "/", "DIB_ENV": "export DIB_X=1",
           "DIB_ARGS": "-o img debian"}
    if os.geteuid() != 0:
        pytest.skip("chown root needs root")
    proc = run_hook("manifests/cleanup.d/01-copy-manifests-dir", env)
    assert proc.returncode == 0, proc.stderr
    assert (save / "dib-manifests/dib_arguments").read_text() == "-o img debian\n"
    mode = (target / "etc/dib-manifests/dib_environment").stat().st_mode & 0o777
    assert mode == 0o600


def test_install_types_links_chosen_variant(tmp_path):
    install = tmp_path / "hooks/install.d"
    for variant in ("source", "package"):
        d = install / f"nova-api-{variant}-install"
        d.mkdir(parents=True)
        (d / "74-nova").write_text(variant)
    env = {"TMP_HOOKS_PATH": str(tmp_path / "hooks"), "DIB_INSTALLTYPE_nova_api": "package"}
    proc = run_hook("install-types/extra-data.d/99-enable-install-types", env)
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(install / "74-nova") == "nova-api-package-install/74-nova"
    os.unlink(install / "74-nova")
    env.pop("DIB_INSTALLTYPE_nova_api")
    assert run_hook("install-types/extra-data.d/99-enable-install-types", env).returncode == 0
    assert os.readlink(install / "74-nova") == "nova-api-source-install/74-nova"


def test_pkg_map_extra_data_copies_maps(tmp_path):
    el = tmp_path / "el-a"
    el.mkdir()
    (el / "pkg-map").write_text("{}")
    (tmp_path / "el-b").mkdir()
    mnt = tmp_path / "mnt"
    script = (f'get_image_element_array() {{ echo "[el-a]={el} [el-b]={tmp_path / "el-b"}"; }}; '
              f'export -f get_image_element_array; '
              f'"{ELEMENTS}/pkg-map/extra-data.d/10-create-pkg-map-dir"')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "TMP_MOUNT_PATH": str(mnt)})
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (mnt / "usr/share/pkg-map").iterdir()) == ["el-a"]


def test_dib_init_system_env_rejects_unknown():
    rel = ELEMENTS / "dib-init-system/environment.d/99-dib-init-system"
    ok = subprocess.run(["bash", "-c", f'source "{rel}"'], env={"DIB_INIT_SYSTEM": "systemd"})
    bad = subprocess.run(["bash", "-c", f'source "{rel}"'], env={"DIB_INIT_SYSTEM": "runit"},
                         capture_output=True)
    unset = subprocess.run(["bash", "-c", f'source "{rel}"'], env={}, capture_output=True)
    assert ok.returncode == 0 and bad.returncode == 1 and unset.returncode == 1
