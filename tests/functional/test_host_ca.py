"""Hooks in the chroot trust the CA bundle the host trusts, and the image keeps none of it."""
from __future__ import annotations

import tarfile
import time

import pytest

from functional_support import needs_build_host, read_tar_member

pytestmark = [pytest.mark.functional, needs_build_host]

CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE",
                "GIT_SSL_CAINFO")


def ca_probe(builds) -> None:
    """install.d copies what the CA variables name into the image, so the
    test can compare it with the bundle the build was given."""
    checks = "\n".join(f'[ "${name}" = "$PIP_CERT" ] || {{ echo "{name} differs"; exit 1; }}'
                       for name in CA_VARIABLES)
    builds.element("ca-probe", {
        "README.rst": "probe\n",
        "element-deps": "debian-minimal\n",
        "install.d/50-ca-probe": f"""#!/bin/bash
# run {time.time_ns()}
set -eu -o pipefail
if [ -d /run/dib-host-ca ]; then
    {checks}
    cp "$PIP_CERT" /ca-seen-by-hooks.crt
    ls /run/dib-host-ca > /ca-dir-listing
else
    echo none > /ca-seen-by-hooks.crt
fi
""",
    })


def test_hooks_see_the_given_bundle_and_the_image_keeps_none(builds, tmp_path):
    bundle = tmp_path / "corporate-ca.crt"
    bundle.write_text(f"# a bundle made for this run {time.time_ns()}\n"
                      + open("/etc/ssl/certs/ca-certificates.crt").read()[:4000])
    ca_probe(builds)
    result = builds.run("-t", "tar", "--host-ca-bundle", str(bundle), "ca-probe",
                        name="ca")
    assert result.returncode == 0, result.output[-3000:]
    tar = result.image.with_suffix(".tar")
    assert read_tar_member(tar, "./ca-seen-by-hooks.crt") == bundle.read_bytes()
    assert read_tar_member(tar, "./ca-dir-listing") == b"ca-certificates.crt\n"
    assert read_tar_member(tar, "./run/dib-host-ca/ca-certificates.crt") is None
    with tarfile.open(tar) as archive:
        names = archive.getnames()
    assert not [n for n in names if "dib-host-ca" in n], "the bundle's mount point stayed"


def test_none_turns_it_off(builds):
    ca_probe(builds)
    result = builds.run("-t", "tar", "--host-ca-bundle", "none", "ca-probe", name="noca")
    assert result.returncode == 0, result.output[-3000:]
    assert read_tar_member(result.image.with_suffix(".tar"),
                           "./ca-seen-by-hooks.crt") == b"none\n"


def test_a_missing_bundle_is_named_before_any_work(builds, tmp_path):
    ca_probe(builds)
    result = builds.run("-t", "tar", "--host-ca-bundle", str(tmp_path / "nope.crt"),
                        "ca-probe", name="badca")
    assert result.returncode != 0
    assert "--host-ca-bundle" in result.output and "nope.crt" in result.output
    assert "Traceback" not in result.output
    assert "running root.d" not in result.output, "the check came after slow work"
    assert not builds.workspaces()
