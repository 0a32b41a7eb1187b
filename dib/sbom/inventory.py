"""What one image holds, read from its finished tree: the inventory both
SBOM formats are written from."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from packageurl import PackageURL

from dib.sbom import dpkg, files, licenses, python, rootfs

DOC_DIR = "usr/share/doc"


@dataclass(frozen=True)
class Distro:
    namespace: str      # purl namespace: debian, ubuntu, ...
    release: str        # 12, 24.04, or the codename where there is no number

    @classmethod
    def from_os_release(cls, fields: dict[str, str]) -> "Distro":
        namespace = (fields.get("ID") or "debian").lower()
        release = fields.get("VERSION_ID") or fields.get("VERSION_CODENAME") or ""
        return cls(namespace, release)

    @property
    def qualifier(self) -> str:
        return f"{self.namespace}-{self.release}" if self.release else self.namespace


@dataclass
class Inventory:
    name: str
    distro: Distro
    debs: list[tuple[dpkg.DebPackage, licenses.Expression]] = field(default_factory=list)
    pythons: list[python.PythonPackage] = field(default_factory=list)
    loose: list[files.LooseFile] = field(default_factory=list)


def deb_purl(package: dpkg.DebPackage, distro: Distro) -> str:
    qualifiers = {"distro": distro.qualifier}
    if package.architecture:
        qualifiers["arch"] = package.architecture
    return PackageURL(type="deb", namespace=distro.namespace, name=package.name,
                      version=package.version, qualifiers=qualifiers).to_string()


def pypi_purl(package: python.PythonPackage) -> str:
    return PackageURL(type="pypi", name=python.purl_name(package.name),
                      version=package.version).to_string()


def deb_license(root: Path, package: dpkg.DebPackage) -> licenses.Expression:
    return licenses.copyright_expression(
        rootfs.read_text(root, f"{DOC_DIR}/{package.name}/copyright"))


def collect(root: Path, name: str, manifest_dir: str,
            elements: Iterable[tuple[str, Path]] = (),
            memo: files.DigestMemo | None = None) -> Inventory:
    """Read the tree at ``root``; ``manifest_dir`` (in the image) is left
    out of the loose files, ``elements`` are (name, directory) of the
    build's elements for naming who added a file; ``memo``, the loose
    files' digests an earlier SBOM read."""
    inventory = Inventory(name=name, distro=Distro.from_os_release(rootfs.os_release(root)))
    inventory.debs = [(p, deb_license(root, p)) for p in dpkg.read_packages(root)]
    # one pass over the tree for both readers
    listing = rootfs.scan(root, dict.fromkeys(python.SEARCH_ROOTS + files.SCAN_DIRS))
    inventory.pythons = python.find_packages(root, listing)
    inventory.loose = files.loose_files(root, dpkg.owned_paths(root), skip=[manifest_dir],
                                        sources=files.element_sources(elements),
                                        listing=listing, memo=memo)
    return inventory
