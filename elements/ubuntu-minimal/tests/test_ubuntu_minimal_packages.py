"""Which kernel ubuntu-minimal's package-installs.yaml installs, as the build
folds it (dib.elements.package_installs)."""
import subprocess
from pathlib import Path

import testtools
import yaml

from dib.elements import package_installs

ELEMENT = Path(__file__).resolve().parents[1]
KERNELS = {"linux-image-generic", "linux-image-kvm", "linux-image-virtual",
           "linux-generic-hwe-20.04", "linux-generic-hwe-22.04", "linux-generic-hwe-24.04"}


def installed(kernel, release="noble", arch="amd64"):
    data = yaml.safe_load((ELEMENT / "package-installs.yaml").read_text())
    package_installs.validate(data, element="ubuntu-minimal", path="package-installs.yaml")
    env = {"DIB_UBUNTU_KERNEL": kernel, "DIB_RELEASE": release, "ARCH": arch}
    phases = package_installs.squash([("ubuntu-minimal", data)], env=env, arch=arch)
    names = {pkg for pkg, *_ in phases.get("install.d", {}).get("install", [])}
    return names & KERNELS, names


class TestKernelPackage(testtools.TestCase):

    def test_one_kernel_for_the_setting(self):
        for kernel, release, want in [
            ("linux-image-generic", "noble", {"linux-image-generic"}),
            ("linux-image-virtual", "noble", {"linux-image-virtual"}),
            ("linux-image-kvm", "jammy", {"linux-image-kvm"}),
            ("linux-image-hwe", "noble", {"linux-generic-hwe-24.04"}),
            ("linux-image-hwe", "jammy", {"linux-generic-hwe-22.04"}),
        ]:
            kernels, names = installed(kernel, release)
            self.assertEqual(want, kernels, f"DIB_UBUNTU_KERNEL={kernel} on {release}")
            self.assertIn("initramfs-tools", names)

    def test_no_kvm_kernel_on_arm64(self):
        self.assertEqual(set(), installed("linux-image-kvm", arch="arm64")[0])

    def test_generic_kernel_unless_told_otherwise(self):
        self.assertEqual("linux-image-generic", kernel_setting())
        self.assertEqual("linux-image-virtual",
                         kernel_setting(DIB_UBUNTU_KERNEL="linux-image-virtual"))


def kernel_setting(**env):
    script = f"source {ELEMENT / 'environment.d' / '11-ubuntu-kernel.bash'}; " \
             'printf %s "$DIB_UBUNTU_KERNEL"'
    return subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, check=True).stdout
