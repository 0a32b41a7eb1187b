"""ironic-python-agent-builder's elements, as PyPI ships them, build an Ironic
deploy ramdisk that boots until the agent starts."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from functional_support import CACHE_DIR, ROOT, needs_build_host

pytestmark = [pytest.mark.functional, needs_build_host]

INPUTS = CACHE_DIR.parent / "ipa-inputs"
# The agent's own first log line; journald forwards it to the serial console.
AGENT_STARTED = "Starting ironic-python-agent version"
KERNEL_ARGS = "console=ttyS0 systemd.journald.forward_to_console=1"


@pytest.fixture(scope="module")
def ipa_env() -> dict[str, str]:
    """ELEMENTS_PATH and DIB_REPOLOCATION_* for the pinned releases."""
    prepared = subprocess.run([sys.executable, str(ROOT / "tools" / "prepare-ipa-inputs"),
                               str(INPUTS)], capture_output=True, text=True)
    if prepared.returncode != 0:
        pytest.skip("could not fetch ironic-python-agent-builder and ironic-python-agent "
                    f"from PyPI: {prepared.stderr.strip()[-500:]}")
    env_file = Path(prepared.stdout.strip().splitlines()[-1])
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line)


def cpio_names(initramfs: Path) -> set[str]:
    unpack = subprocess.Popen(["gzip", "-dc", str(initramfs)], stdout=subprocess.PIPE)
    listing = subprocess.run(["cpio", "-it", "--quiet"], stdin=unpack.stdout,
                             capture_output=True, check=True)
    assert unpack.wait() == 0
    return set(listing.stdout.decode(errors="replace").splitlines())


def test_deploy_ramdisk_builds_unchanged_elements_and_the_agent_starts(builds, ipa_env):
    env = dict(ipa_env, DIB_CHECKSUM="sha256")
    result = builds.run("ironic-python-agent-ramdisk", "debian-minimal", name="ipa", env=env)
    assert result.returncode == 0, result.output[-4000:]
    kernel = result.image.with_suffix(".kernel")
    initramfs = result.image.with_suffix(".initramfs")
    assert kernel.is_file() and initramfs.is_file()
    assert not result.image.with_suffix(".qcow2").exists(), \
        "no-final-image is among the elements: no disk image"
    checked = subprocess.run(["sha256sum", "-c", "ipa.sha256"], cwd=result.image.parent,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ipa.initramfs: OK" in checked.stdout and "ipa.kernel: OK" in checked.stdout

    names = cpio_names(initramfs)
    assert "usr/local/bin/ironic-python-agent" in names
    assert "etc/systemd/system/multi-user.target.wants/ironic-python-agent.service" in names
    assert not [n for n in names if n.startswith("run/dib-host-ca")]

    boot = subprocess.run(
        [sys.executable, "-m", "dib.cli.main", "boot", "--kernel", str(kernel),
         "--initrd", str(initramfs), "--append", KERNEL_ARGS, "--memory", "3072",
         "--timeout", "420",
         "--expect", AGENT_STARTED, "--log", str(builds.scratch / "ipa-console.log")],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    console = (builds.scratch / "ipa-console.log").read_text(errors="replace") \
        if (builds.scratch / "ipa-console.log").exists() else ""
    assert boot.returncode == 0, boot.stdout + boot.stderr + console[-3000:]
    assert AGENT_STARTED in console


def test_a_repository_location_that_does_not_exist_is_named(builds, ipa_env, tmp_path):
    missing = tmp_path / "no-such-repo"
    env = dict(ipa_env, DIB_REPOLOCATION_ironic_python_agent=str(missing))
    result = builds.run("ironic-python-agent-ramdisk", "debian-minimal", name="bad", env=env)
    assert result.returncode != 0
    assert f"DIB_REPOLOCATION_ironic_python_agent={missing}" in result.output
    assert "element 'ironic-python-agent-ramdisk" in result.output
    assert "Traceback" not in result.output
    assert "running root.d" not in result.output, "found only after slow work"
    assert not builds.workspaces()
