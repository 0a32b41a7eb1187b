"""Real builds of ubuntu-minimal and ubuntu.

They need an Ubuntu archive mirror, which this project never names: set
DIB_TEST_UBUNTU_MIRROR (or DIB_DISTRIBUTION_MIRROR) to one this machine
reaches, and have Ubuntu's archive keyring on the host. Without them the
builds are skipped, saying why; the early failure on a non-Ubuntu mirror is
tested wherever the host's own mirror is not Ubuntu's.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dib.config.hostapt import host_mirrors
from functional_support import needs_build_host, read_tar_member

pytestmark = [pytest.mark.functional, needs_build_host]

RELEASE = "noble"
KEYRING = Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg")


def release_origin(mirror: str) -> str | None:
    """The Origin of the mirror's RELEASE, or None when it does not answer."""
    url = f"{mirror.rstrip('/')}/dists/{RELEASE}/Release"
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    for line in text.splitlines():
        if line.startswith("Origin:"):
            return line.split(":", 1)[1].strip()
    return ""


def ubuntu_mirror() -> tuple[str | None, str]:
    """(a usable Ubuntu mirror, or None with the reason)."""
    mirror = os.environ.get("DIB_TEST_UBUNTU_MIRROR") or os.environ.get("DIB_DISTRIBUTION_MIRROR")
    if not mirror:
        return None, "no Ubuntu mirror given (set DIB_TEST_UBUNTU_MIRROR)"
    origin = release_origin(mirror)
    if origin is None:
        return None, f"the Ubuntu mirror {mirror} does not answer for {RELEASE}"
    if origin != "Ubuntu":
        return None, f"{mirror} is not an Ubuntu archive (Origin: {origin})"
    if not KEYRING.is_file() and not os.environ.get("DIB_APT_KEYRING"):
        return None, f"no Ubuntu archive keyring on the host ({KEYRING} or DIB_APT_KEYRING)"
    return mirror, ""


@pytest.mark.parametrize("element", ["ubuntu-minimal", "ubuntu"])
def test_ubuntu_tree_builds(builds, element):
    mirror, reason = ubuntu_mirror()
    if mirror is None:
        pytest.skip(reason)
    result = builds.run("-t", "tar", element, name=element,
                        env={"DIB_DISTRIBUTION_MIRROR": mirror, "DIB_RELEASE": RELEASE})
    assert result.returncode == 0, result.output[-3000:]
    tar = result.image.with_suffix(".tar")
    os_release = read_tar_member(tar, "./usr/lib/os-release").decode()
    assert "ID=ubuntu\n" in os_release
    assert f"VERSION_CODENAME={RELEASE}\n" in os_release
    sources = read_tar_member(tar, "./etc/apt/sources.list.d/ubuntu.sources").decode()
    assert f"Suites: {RELEASE} {RELEASE}-updates" in sources
    if element == "ubuntu":
        datasources = read_tar_member(
            tar, "./etc/cloud/cloud.cfg.d/91-dib-cloud-init-datasources.cfg").decode()
        assert "datasource_list: [ Ec2, None ]" in datasources


def test_non_ubuntu_mirror_stops_before_the_bootstrap(builds):
    host = host_mirrors().mirror
    if not host:
        pytest.skip("the host has no apt mirror")
    if release_origin(host) == "Ubuntu":
        pytest.skip("the host's mirror is an Ubuntu archive")
    result = builds.run("-t", "tar", "ubuntu-minimal", name="ubuntu-on-debian",
                        env={"DIB_DISTRIBUTION_MIRROR": "", "DIB_RELEASE": RELEASE})
    assert result.returncode != 0
    assert "ubuntu-common (root.d/05-ubuntu-check-mirror): " \
           f"DIB_DISTRIBUTION_MIRROR={host}" in result.output, result.output[-3000:]
    assert "Bootstrapping" not in result.output
