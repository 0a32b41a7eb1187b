"""Old-style plain package lists (``<phase>.d/package-installs-<element>``) in a
merged hooks tree: the install-types hook links the chosen install type's list
into install.d, and package-installs' own phase hooks install and remove what
the lists say, through pkg-map. Real element files, real hooks; only
install-packages is a stub. No root, no network.

The sample element copies the layout of the lists that ironic-python-agent-builder
and DIB's simple-init ship: ``install.d/<element>-package-install/package-installs-<element>``.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from dib.elements.discovery import shipped_elements_dir, shipped_hooks_dir
from dib.elements.model import Element
from dib.elements.package_installs import squash
from dib.runtime import hooktree

RECORD = """#!/bin/bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
"""
AGENT = "agent-ramdisk"
PKG_MAP = {"family": {"debian": {"agent": "python3-agent"}},
           "default": {"agent": "openstack-agent", "build-tools": "gcc make"}}


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


@pytest.fixture
def sample_element(tmp_path: Path) -> Element:
    root = tmp_path / "elements" / AGENT
    write(root / "README.rst", "agent-ramdisk\n")
    write(root / "pkg-map", json.dumps(PKG_MAP))
    write(root / "package-installs.yaml", "curl:\n")
    write(root / "install.d" / f"{AGENT}-package-install" / f"package-installs-{AGENT}",
          "# the distribution's agent\nagent\n-build-tools\n")
    write(root / "install.d" / f"{AGENT}-source-install" / "60-agent-from-source",
          "#!/bin/bash\nexit 0\n", 0o755)
    write(root / "post-install.d" / f"package-installs-{AGENT}", "tcpdump\n")
    return Element(AGENT, root)


@pytest.fixture
def hooks_tree(tmp_path: Path, sample_element: Element):
    """Build a merged hooks tree of package-installs, install-types and the
    sample element, as a build does before the chroot phases. Return a
    function that runs one of its hooks on the host."""
    shipped = shipped_elements_dir()
    elements = [Element(n, shipped / n) for n in ("package-installs", "install-types")]
    elements.append(sample_element)
    target = tmp_path / "hooks"
    hooktree.merge_hooks_tree(elements, shipped_hooks_dir(), target)
    env = {"DIB_DEFAULT_INSTALLTYPE": "source", "ARCH": "amd64", "DISTRO_NAME": "debian",
           "DIB_RELEASE": "bookworm"}
    squashed = squash([(e.name, e.package_installs) for e in elements
                       if e.package_installs is not None], env=env, arch="amd64")
    hooktree.write_package_installs(target, squashed)
    maps = tmp_path / "pkg-map"
    write(maps / AGENT, json.dumps(PKG_MAP))
    stubs = tmp_path / "stubs"
    write(stubs / "install-packages", RECORD, 0o755)
    log = tmp_path / "install-packages.log"
    base = dict(env, PATH=f"{stubs}:{target}/bin:{os.environ['PATH']}", STUB_LOG=str(log),
                TMP_HOOKS_PATH=str(target), DIB_PKG_MAP_DIR=str(maps),
                DIB_PACKAGE_INSTALLS_FILE=str(target / "package-installs.json"))

    def run(hook: str, **extra: str) -> list[str]:
        proc = subprocess.run([str(target / hook)], env=dict(base, **extra),
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return lines

    return run


def test_package_install_type_list_is_installed_and_removed(hooks_tree):
    chosen = {f"DIB_INSTALLTYPE_{AGENT.replace('-', '_')}": "package"}
    hooks_tree("extra-data.d/99-enable-install-types", **chosen)
    # The plain list comes first, mapped by the element's pkg-map; the
    # element's package-installs.yaml follows in the same call.
    assert hooks_tree("install.d/01-package-installs") == [
        "install-packages python3-agent gcc make curl"]
    # '-build-tools' was for the phase only.
    assert hooks_tree("install.d/99-package-uninstalls") == ["install-packages -e gcc make"]


def test_source_install_type_leaves_the_package_list_out(hooks_tree):
    hooks_tree("extra-data.d/99-enable-install-types")
    assert hooks_tree("install.d/01-package-installs") == ["install-packages curl"]
    assert hooks_tree("install.d/99-package-uninstalls") == []


def test_list_in_another_phase_is_read_by_that_phase_only(hooks_tree):
    hooks_tree("extra-data.d/99-enable-install-types")
    assert hooks_tree("post-install.d/00-package-installs") == ["install-packages tcpdump"]
    assert hooks_tree("pre-install.d/10-package-installs") == []
    assert hooks_tree("post-install.d/95-package-uninstalls") == []
