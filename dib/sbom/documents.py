"""SPDX 2.3 and CycloneDX 1.5 JSON documents, written as plain data to the
two specifications from one ``Inventory``."""
from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any

from dib.sbom import licenses
from dib.sbom.inventory import Inventory, deb_purl, pypi_purl

# A fixed namespace, so one inventory at one time always gets the same
# document UUID (reproducible builds make reproducible SBOMs).
_UUID_NAMESPACE = uuid.UUID("6f1c1d1e-6a37-4d1b-9c61-2f4b8a0e5d10")
IMAGE_REF = "SPDXRef-image"


def timestamp(source_date_epoch: str | None) -> str:
    """ISO 8601 UTC, from SOURCE_DATE_EPOCH when it is set (a bad value is
    the caller's to reject), else now."""
    seconds = int(source_date_epoch) if source_date_epoch else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def document_uuid(inventory: Inventory, created: str, kind: str) -> str:
    digest = hashlib.sha256(json.dumps(
        [kind, inventory.name, created, inventory.distro.qualifier,
         [(p.name, p.version, p.architecture) for p, _ in inventory.debs],
         [(p.name, p.version, p.location) for p in inventory.pythons],
         [(f.path, f.sha256) for f in inventory.loose]]).encode()).hexdigest()
    return str(uuid.uuid5(_UUID_NAMESPACE, digest))


class _Ids:
    """SPDX element ids: only letters, digits, ``.`` and ``-``, each unique."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, *parts: str) -> str:
        base = "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", "-".join(parts)).strip("-")
        candidate, count = base, 1
        while candidate in self.used:
            count += 1
            candidate = f"{base}-{count}"
        self.used.add(candidate)
        return candidate


def spdx(inventory: Inventory, created: str, tool: str) -> dict[str, Any]:
    ids = _Ids()
    ids.used.add(IMAGE_REF)
    refs: dict[str, str] = {}
    packages: list[dict[str, Any]] = [{
        "SPDXID": IMAGE_REF, "name": inventory.name, "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False, "primaryPackagePurpose": "OPERATING_SYSTEM",
        "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION"}]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": IMAGE_REF}]
    for package, license in inventory.debs:
        refs.update(license.refs)
        entry = _spdx_package(ids.make("deb", package.name, package.architecture),
                              package.name, package.version, deb_purl(package, inventory.distro),
                              license)
        entry["sourceInfo"] = (f"built from Debian source package {package.source} "
                               f"{package.source_version}")
        entry["comment"] = f"architecture {package.architecture}"
        packages.append(entry)
    for dist in inventory.pythons:
        refs.update(dist.license.refs)
        entry = _spdx_package(ids.make("pypi", dist.name, dist.version), dist.name,
                              dist.version, pypi_purl(dist), dist.license)
        entry["comment"] = f"installed in {dist.location}"
        packages.append(entry)
    relationships += [{"spdxElementId": IMAGE_REF, "relationshipType": "CONTAINS",
                       "relatedSpdxElement": p["SPDXID"]} for p in packages[1:]]
    spdx_files = []
    for loose in inventory.loose:
        entry: dict[str, Any] = {
            "SPDXID": ids.make("file", loose.path), "fileName": "." + loose.path,
            "checksums": [{"algorithm": "SHA1", "checksumValue": loose.sha1},
                          {"algorithm": "SHA256", "checksumValue": loose.sha256}],
            "licenseConcluded": "NOASSERTION", "copyrightText": "NOASSERTION"}
        entry["comment"] = (f"added by element {loose.element}" if loose.element
                            else "in no package")
        spdx_files.append(entry)
        relationships.append({"spdxElementId": IMAGE_REF, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": entry["SPDXID"]})
    document: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": inventory.name,
        "documentNamespace": f"urn:uuid:{document_uuid(inventory, created, 'spdx')}",
        "creationInfo": {"created": created, "creators": [f"Tool: {tool}"]},
        "packages": packages, "files": spdx_files, "relationships": relationships}
    if refs:
        document["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "name": name,
             "extractedText": f"The licence a package names '{name}', which has no "
                              "SPDX identifier; see the package's copyright file."}
            for ref, name in sorted(refs.items())]
    return document


def _spdx_package(spdx_id: str, name: str, version: str, purl: str,
                  license: licenses.Expression) -> dict[str, Any]:
    return {"SPDXID": spdx_id, "name": name, "versionInfo": version,
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION", "licenseDeclared": license.text,
            "copyrightText": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER",
                              "referenceType": "purl", "referenceLocator": purl}]}


def cyclonedx(inventory: Inventory, created: str, tool: str) -> dict[str, Any]:
    name, _, version = tool.partition("-")
    components: list[dict[str, Any]] = []
    for package, license in inventory.debs:
        purl = deb_purl(package, inventory.distro)
        components.append(_cdx_component(purl, package.name, package.version, license, [
            ("dib:deb:architecture", package.architecture),
            ("dib:deb:source", package.source),
            ("dib:deb:source-version", package.source_version)]))
    for dist in inventory.pythons:
        purl = pypi_purl(dist)
        component = _cdx_component(purl, dist.name, dist.version, dist.license,
                                   [("dib:python:location", dist.location)])
        component["bom-ref"] = f"{purl}#{dist.location}"
        components.append(component)
    for loose in inventory.loose:
        component = {"type": "file", "bom-ref": f"file:{loose.path}", "name": loose.path,
                     "hashes": [{"alg": "SHA-1", "content": loose.sha1},
                                {"alg": "SHA-256", "content": loose.sha256}]}
        if loose.element:
            component["properties"] = [{"name": "dib:element", "value": loose.element}]
        components.append(component)
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{document_uuid(inventory, created, 'cyclonedx')}",
        "version": 1,
        "metadata": {"timestamp": created,
                     "tools": {"components": [{"type": "application", "name": name,
                                               "version": version}]},
                     "component": {"type": "operating-system", "bom-ref": "image",
                                   "name": inventory.name}},
        "components": components}


def _cdx_component(purl: str, name: str, version: str, license: licenses.Expression,
                   properties: list[tuple[str, str]]) -> dict[str, Any]:
    component: dict[str, Any] = {"type": "library", "bom-ref": purl, "name": name,
                                 "version": version, "purl": purl}
    if license.text != licenses.NOASSERTION:
        component["licenses"] = [{"expression": license.text}]
    component["properties"] = [{"name": k, "value": v} for k, v in properties if v]
    return component
