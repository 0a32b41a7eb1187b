"""The SBOM of an image tree: dpkg status, DEP-5 licences, purls, Python
distributions, files in no package, and the SPDX and CycloneDX documents,
validated against the official JSON schemas."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dib.config.cli import build_parser, config_from_args
from dib.errors import ConfigError
from dib.sbom import documents, dpkg, files, licenses, python, rootfs, write_sboms
from dib.sbom.inventory import Distro, collect, deb_purl, pypi_purl
from sbom_schemas import cyclonedx_validator, errors, spdx_license_list, spdx_validator

DEP5_HEADER = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
               "Upstream-Name: demo\n")


# -- a fake image tree ----------------------------------------------------------

def status_entry(name: str, version: str, arch: str = "amd64", *, source: str | None = None,
                 state: str = "install ok installed") -> str:
    lines = [f"Package: {name}", f"Status: {state}", "Priority: optional",
             f"Architecture: {arch}"]
    if source:
        lines.append(f"Source: {source}")
    lines += [f"Version: {version}", "Description: a package",
              " with a long description", " .", " over lines"]
    return "\n".join(lines) + "\n"


def write(root: Path, relative: str, content: str | bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def fake_tree(root: Path, *, os_id: str = "debian", version_id: str = "12") -> Path:
    """A small merged-/usr Debian tree: two packages, one with a DEP-5
    copyright file; a venv with one distribution; a file in no package."""
    root.mkdir(parents=True, exist_ok=True)
    os.symlink("usr/bin", root / "bin")
    write(root, "usr/lib/os-release",
          f'PRETTY_NAME="Test"\nID={os_id}\nVERSION_ID="{version_id}"\n')
    os.symlink("../usr/lib/os-release", root / "etc-os-release-tmp")
    (root / "etc").mkdir()
    os.replace(root / "etc-os-release-tmp", root / "etc" / "os-release")
    write(root, "var/lib/dpkg/status",
          status_entry("bash", "5.2.15-2+b2", source="bash (5.2.15-2)")
          + "\n" + status_entry("libc6", "2.36-9", source="glibc")
          + "\n" + status_entry("gone", "1.0", state="deinstall ok config-files"))
    write(root, "var/lib/dpkg/info/bash.list", "/.\n/bin\n/bin/bash\n/etc/bash.bashrc\n"
          "/usr/share/doc/bash/copyright\n")
    write(root, "var/lib/dpkg/info/libc6:amd64.list",
          "/usr/lib/libc.so.6\n/usr/share/doc/libc6/copyright\n")
    write(root, "usr/bin/bash", b"\x7fELF bash")
    write(root, "etc/bash.bashrc", "# rc\n")
    write(root, "usr/lib/libc.so.6", b"\x7fELF libc")
    write(root, "usr/share/doc/bash/copyright",
          DEP5_HEADER + "\nFiles: *\nCopyright: someone\nLicense: GPL-3+\n"
          "\nFiles: lib/glob/*\nCopyright: other\nLicense: BSD-3-clause or GPL-2+\n"
          "\nLicense: GPL-3+\n The text of the GPL.\n")
    write(root, "usr/share/doc/libc6/copyright", "This is free software, see the LGPL.\n")
    write(root, "opt/tool/lib/python3.11/site-packages/Demo_Tool-2.0.dist-info/METADATA",
          "Metadata-Version: 2.4\nName: Demo_Tool\nVersion: 2.0\nLicense-Expression: MIT\n")
    write(root, "opt/tool/lib/python3.11/site-packages/demo_tool/__init__.py", "")
    write(root, "opt/tool/bin/demo", "#!/bin/sh\n")
    write(root, "etc/machine-id", "")
    write(root, "etc/dib-manifests/dib_arguments", "debian-minimal\n")
    return root


# -- reading the tree -------------------------------------------------------------

def test_status_lists_installed_packages_with_their_source():
    text = (status_entry("bash", "5.2.15-2+b2", source="bash (5.2.15-2)") + "\n"
            + status_entry("libc6", "2.36-9", "i386", source="glibc") + "\n"
            + status_entry("libc6", "2.36-9", "amd64", source="glibc") + "\n"
            + status_entry("old", "1", state="deinstall ok config-files") + "\n"
            + status_entry("half", "2", state="install reinstreq half-installed"))
    found = dpkg.parse_status(text)
    assert [(p.name, p.architecture) for p in found] == [
        ("bash", "amd64"), ("half", "amd64"), ("libc6", "amd64"), ("libc6", "i386")]
    bash = found[0]
    assert (bash.version, bash.source, bash.source_version) == ("5.2.15-2+b2", "bash", "5.2.15-2")
    # no version in Source: the binary's own version is the source's
    assert (found[2].source, found[2].source_version) == ("glibc", "2.36-9")
    # no Source field: the package is its own source
    assert (found[1].source, found[1].source_version) == ("half", "2")


def test_owned_paths_follow_merged_usr_and_diversions(tmp_path):
    root = fake_tree(tmp_path)
    write(root, "var/lib/dpkg/diversions", "/usr/bin/x\n/usr/bin/x.real\npkg\n")
    owned = dpkg.owned_paths(root)
    assert "usr/bin/bash" in owned            # listed as /bin/bash
    assert "etc/bash.bashrc" in owned and "usr/lib/libc.so.6" in owned
    assert "usr/bin/x.real" in owned


def test_symlinks_resolve_inside_the_tree(tmp_path):
    os.symlink("/etc/passwd", tmp_path / "escape")
    assert rootfs.resolve(tmp_path, "escape") == "etc/passwd"
    assert rootfs.read_text(tmp_path, "escape") is None     # not the host's file
    os.symlink("loop", tmp_path / "loop")
    assert rootfs.resolve(tmp_path, "loop/x") is None


def test_os_release_through_an_absolute_link(tmp_path):
    write(tmp_path, "usr/lib/os-release", 'ID=ubuntu\nVERSION_ID="24.04"\n')
    (tmp_path / "etc").mkdir()
    os.symlink("/usr/lib/os-release", tmp_path / "etc/os-release")
    assert Distro.from_os_release(rootfs.os_release(tmp_path)) == Distro("ubuntu", "24.04")


# -- licences ---------------------------------------------------------------------

def test_dep5_names_come_from_files_paragraphs_only():
    text = (DEP5_HEADER + "License: GPL-2+\n\nFiles: *\nCopyright: x\nLicense: Expat\n"
            "\nFiles: a/*\nCopyright: y\nLicense: GPL-2+\n Some text.\n"
            "\nLicense: Expat\n Permission is hereby granted...\n"
            "\nLicense: Apache-2.0\n Only defined, used by no file.\n")
    assert licenses.dep5_license_names(text) == ["GPL-2+", "Expat"]


def test_a_free_form_copyright_file_asserts_nothing():
    assert licenses.dep5_license_names("Copyright 2001 someone. GPL.\n") is None
    assert licenses.copyright_expression("Copyright 2001 someone.\n").text == "NOASSERTION"
    assert licenses.copyright_expression(None).text == "NOASSERTION"


@pytest.mark.parametrize("debian, expected", [
    ("GPL-2+", "GPL-2.0-or-later"),
    ("GPL-2", "GPL-2.0-only"),
    ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("Expat", "MIT"),
    ("BSD-3-clause", "BSD-3-Clause"),
    ("GPL-2+ or Artistic", "GPL-2.0-or-later OR LicenseRef-Artistic"),
    ("(LGPL-2.1+ or GPL-3) and zlib", "(LGPL-2.1-or-later OR GPL-3.0-only) AND Zlib"),
    ("GPL-2+ with OpenSSL exception", "LicenseRef-GPL-2-plus-with-OpenSSL-exception"),
    ("GPL-2+, and BSD-3-clause", "LicenseRef-GPL-2-plus-and-BSD-3-clause"),
    ("or GPL-2", "LicenseRef-or-GPL-2"),
    ("MIT OR LicenseRef-Proprietary", "MIT OR LicenseRef-Proprietary"),
])
def test_debian_names_become_spdx_expressions(debian, expected):
    assert licenses.convert(debian).text == expected


def test_every_known_identifier_is_on_the_spdx_list():
    assert sorted(licenses.KNOWN_IDS - spdx_license_list()) == []


def test_a_package_with_several_licences_needs_all():
    text = (DEP5_HEADER + "\nFiles: *\nCopyright: x\nLicense: GPL-3+\n"
            "\nFiles: b/*\nCopyright: y\nLicense: public-domain\n"
            "\nFiles: c/*\nCopyright: z\nLicense: MIT or GPL-2+\n")
    expression = licenses.copyright_expression(text)
    assert expression.text == ("GPL-3.0-or-later AND LicenseRef-public-domain AND "
                               "(MIT OR GPL-2.0-or-later)")
    assert expression.refs == {"LicenseRef-public-domain": "public-domain"}


# -- purls --------------------------------------------------------------------------

def test_deb_purls_name_the_distribution_and_architecture():
    package = dpkg.DebPackage("bash", "5.2.15-2+b2", "amd64", "bash", "5.2.15-2")
    assert deb_purl(package, Distro("debian", "12")) == \
        "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12"
    assert deb_purl(package, Distro("ubuntu", "24.04")).startswith(
        "pkg:deb/ubuntu/bash@5.2.15-2%2Bb2?arch=amd64&distro=ubuntu-24.04")
    # Debian testing has no VERSION_ID: the codename stands for the release
    assert Distro.from_os_release({"ID": "debian", "VERSION_CODENAME": "forky"}) == \
        Distro("debian", "forky")


def test_pypi_purls_use_the_normalised_name():
    dist = python.PythonPackage("Demo_Tool", "2.0", licenses.Expression(), "/opt")
    assert pypi_purl(dist) == "pkg:pypi/demo-tool@2.0"


# -- Python distributions -----------------------------------------------------------

def test_metadata_licence_sources_in_order_of_trust():
    with_expression = python.read_metadata(
        "Name: a\nVersion: 1\nLicense-Expression: Apache-2.0 OR MIT\nLicense: BSD\n", "/x")
    assert with_expression.license.text == "Apache-2.0 OR MIT"
    with_field = python.read_metadata("Name: b\nVersion: 1\nLicense: BSD-3-Clause\n", "/x")
    assert with_field.license.text == "BSD-3-Clause"
    with_classifier = python.read_metadata(
        "Name: c\nVersion: 1\nLicense: see LICENSE file\n"
        "Classifier: License :: OSI Approved :: MIT License\n", "/x")
    assert with_classifier.license.text == "MIT"
    unknown = python.read_metadata("Name: d\nVersion: 1\nLicense: Custom\n", "/x")
    assert unknown.license.text == "NOASSERTION"
    assert python.read_metadata("Name: e\n", "/x") is None


def test_distributions_found_in_system_site_and_venvs(tmp_path):
    write(tmp_path, "usr/lib/python3/dist-packages/PyYAML-6.0.egg-info",
          "Metadata-Version: 1.1\nName: PyYAML\nVersion: 6.0\nLicense: MIT\n")
    write(tmp_path, "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
          "Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\n")
    write(tmp_path, "usr/glean/lib/python3.11/site-packages/glean-1.24.dist-info/METADATA",
          "Name: glean\nVersion: 1.24\n")
    write(tmp_path, "opt/x/lib/python3.11/site-packages/pip-24.0.dist-info/RECORD", "")
    found = python.find_packages(tmp_path)
    assert [(p.name, p.version, p.location) for p in found] == [
        ("glean", "1.24", "/usr/glean/lib/python3.11/site-packages"),
        ("PyYAML", "6.0", "/usr/lib/python3/dist-packages"),
        ("six", "1.16.0", "/usr/lib/python3/dist-packages")]


# -- files in no package -------------------------------------------------------------

def test_loose_files_are_unowned_regular_files(tmp_path):
    root = fake_tree(tmp_path)
    write(root, "usr/lib/python3/dist-packages/__pycache__/x.cpython-311.pyc", b"x")
    os.symlink("demo", root / "opt/tool/bin/demo-link")
    loose = files.loose_files(root, dpkg.owned_paths(root), skip=["/etc/dib-manifests"])
    paths = [f.path for f in loose]
    assert paths == ["/opt/tool/bin/demo", "/opt/tool/lib/python3.11/site-packages/"
                     "demo_tool/__init__.py", "/usr/lib/os-release"]
    assert loose[0].sha256 == hashlib.sha256(b"#!/bin/sh\n").hexdigest()
    assert loose[0].element is None


def test_a_file_is_attributed_to_the_element_that_ships_it(tmp_path):
    root = tmp_path / "root"
    write(root, "etc/motd", "hello\n")
    write(root, "usr/local/bin/tool", "#!/bin/sh\n")
    write(root, "usr/share/pkg-map/mine", "{}\n")
    write(tmp_path / "mine", "static/etc/motd", "hello\n")
    write(tmp_path / "mine", "pkg-map", "{}\n")
    write(tmp_path / "other", "static/etc/motd", "different\n")
    write(tmp_path / "both1", "bin/tool", "#!/bin/sh\n")
    write(tmp_path / "both2", "bin/tool", "#!/bin/sh\n")
    sources = files.element_sources([(n, tmp_path / n) for n in ("mine", "other", "both1",
                                                                 "both2")])
    loose = {f.path: f.element for f in files.loose_files(root, set(), sources=sources)}
    # same content as mine's static/ only; two elements ship the tool: neither named
    assert loose == {"/etc/motd": "mine", "/usr/local/bin/tool": None,
                     "/usr/share/pkg-map/mine": "mine"}


def test_digests_remembered_from_an_earlier_sbom_are_those_of_unchanged_files(tmp_path):
    first, second, memo_file = tmp_path / "mnt1", tmp_path / "mnt2", tmp_path / "memo.json"
    write(first, "etc/kept", "kept\n")
    write(first, "etc/rewritten", "one\n")
    memo = files.DigestMemo(memo_file)
    files.loose_files(first, set(), memo=memo)
    memo.save()
    # The same tree mounted elsewhere in the next build: its files, by inode.
    first.rename(second)
    rewritten = second / "etc/rewritten"
    st = rewritten.stat()
    rewritten.write_text("two\n")                      # same size, then the same mtime:
    os.utime(rewritten, ns=(st.st_atime_ns, st.st_mtime_ns))   # only the ctime tells
    memo = files.DigestMemo(memo_file)
    # what the memo holds for the kept file is what it gives back
    kept_key = next(key for key in memo.known if key.startswith("/etc/kept\0"))
    memo.known[kept_key] = ["a" * 64, "b" * 40]
    loose = {f.path: f.sha256 for f in files.loose_files(second, set(), memo=memo)}
    assert loose == {"/etc/kept": "a" * 64,
                     "/etc/rewritten": hashlib.sha256(b"two\n").hexdigest()}


def test_a_memo_that_cannot_be_read_or_written_costs_nothing_but_time(tmp_path):
    write(tmp_path / "root", "etc/motd", "hi\n")
    (tmp_path / "memo.json").write_text("not json")
    memo = files.DigestMemo(tmp_path / "memo.json")
    loose = files.loose_files(tmp_path / "root", set(), memo=memo)
    assert loose[0].sha256 == hashlib.sha256(b"hi\n").hexdigest()
    (tmp_path / "memo.json").unlink()
    (tmp_path / "memo.json").mkdir()                  # not writable as a file
    memo.save()


# -- documents ----------------------------------------------------------------------

def test_documents_of_a_fake_tree_are_valid_and_complete(tmp_path):
    root = fake_tree(tmp_path)
    inventory = collect(root, "demo", "/etc/dib-manifests")
    created = documents.timestamp("1700000000")
    spdx = documents.spdx(inventory, created, "dib-0.1.0")
    assert errors(spdx_validator(), spdx) == []
    assert spdx["creationInfo"] == {"created": "2023-11-14T22:13:20Z",
                                    "creators": ["Tool: dib-0.1.0"]}
    by_name = {p["name"]: p for p in spdx["packages"]}
    assert set(by_name) == {"demo", "bash", "libc6", "Demo_Tool"}
    bash = by_name["bash"]
    assert bash["versionInfo"] == "5.2.15-2+b2"
    assert bash["licenseDeclared"] == "GPL-3.0-or-later AND (BSD-3-Clause OR GPL-2.0-or-later)"
    assert bash["externalRefs"][0]["referenceLocator"] == \
        "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12"
    assert "bash 5.2.15-2" in bash["sourceInfo"]
    assert by_name["libc6"]["licenseDeclared"] == "NOASSERTION"
    assert by_name["Demo_Tool"]["licenseDeclared"] == "MIT"
    assert [f["fileName"] for f in spdx["files"]] == [
        "./opt/tool/bin/demo", "./opt/tool/lib/python3.11/site-packages/demo_tool/__init__.py",
        "./usr/lib/os-release"]
    contained = {r["relatedSpdxElement"] for r in spdx["relationships"]
                 if r["relationshipType"] == "CONTAINS"}
    assert contained == {p["SPDXID"] for p in spdx["packages"][1:]} | \
        {f["SPDXID"] for f in spdx["files"]}

    cdx = documents.cyclonedx(inventory, created, "dib-0.1.0")
    assert errors(cyclonedx_validator(), cdx) == []
    purls = sorted(c["purl"] for c in cdx["components"] if "purl" in c)
    assert purls == ["pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12",
                     "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12",
                     "pkg:pypi/demo-tool@2.0"]
    assert cdx["metadata"]["tools"]["components"][0]["version"] == "0.1.0"


def test_licence_refs_are_defined_in_the_spdx_document(tmp_path):
    root = fake_tree(tmp_path)
    write(root, "usr/share/doc/libc6/copyright",
          DEP5_HEADER + "\nFiles: *\nCopyright: x\nLicense: public-domain\n")
    spdx = documents.spdx(collect(root, "demo", "/etc/dib-manifests"),
                          documents.timestamp("0"), "dib-0.1.0")
    assert errors(spdx_validator(), spdx) == []
    defined = {e["licenseId"] for e in spdx["hasExtractedLicensingInfos"]}
    used = {p["licenseDeclared"] for p in spdx["packages"]}
    assert defined == {"LicenseRef-public-domain"} and "LicenseRef-public-domain" in used


def test_a_broken_document_fails_the_schemas():
    # the validators themselves catch a document that breaks the spec
    assert errors(spdx_validator(), {"spdxVersion": "SPDX-2.3"}) != []
    assert errors(cyclonedx_validator(), {"bomFormat": "CycloneDX", "specVersion": "1.5",
                                          "components": [{"name": "x"}]}) != []


def test_write_puts_copies_beside_and_inside_reproducibly(tmp_path):
    root = fake_tree(tmp_path / "tree")
    image = tmp_path / "out" / "demo"
    image.parent.mkdir()
    written = write_sboms(root, str(image), ["spdx", "cyclonedx"],
                          source_date_epoch="1700000000")
    assert [p.name for p in written] == ["demo.spdx.json", "demo.cdx.json"]
    inside = root / "etc/dib-manifests/sbom.spdx.json"
    assert inside.read_bytes() == written[0].read_bytes()
    assert inside.stat().st_mode & 0o777 == 0o600
    assert (root / "etc/dib-manifests/sbom.cdx.json").is_file()
    # the SBOM does not list itself or the other manifests
    assert "dib-manifests" not in written[0].read_text()
    first = written[0].read_bytes()
    write_sboms(root, str(image), ["spdx"], source_date_epoch="1700000000")
    assert written[0].read_bytes() == first


def test_a_bad_source_date_epoch_is_named(tmp_path):
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        write_sboms(fake_tree(tmp_path), str(tmp_path / "img"), ["spdx"],
                    source_date_epoch="yesterday")


# -- the setting ----------------------------------------------------------------------

def sbom_setting(argv: list[str], environ: dict) -> tuple[str, ...]:
    argv = [*argv, "debian-minimal"]
    args = build_parser("disk-image-create", "test").parse_args(argv)
    return config_from_args(args, environ=environ, argv=argv).sbom


def test_sbom_setting_default_list_and_none():
    assert sbom_setting([], {}) == ("spdx",)
    assert sbom_setting(["--sbom", "spdx,cyclonedx"], {}) == ("spdx", "cyclonedx")
    assert sbom_setting([], {"DIB_SBOM": "cyclonedx"}) == ("cyclonedx",)
    # the flag beats the environment, and none is a choice, not "not given"
    assert sbom_setting(["--sbom", "none"], {"DIB_SBOM": "cyclonedx"}) == ()
    assert sbom_setting([], {"DIB_SBOM": "none"}) == ()


def test_an_unknown_sbom_format_is_refused():
    with pytest.raises(ConfigError, match=r"DIB_SBOM.*unknown SBOM format swid"):
        sbom_setting([], {"DIB_SBOM": "spdx,swid"})


def test_sbom_in_a_yaml_manifest(tmp_path):
    from dib.config import manifest
    path = tmp_path / "images.yaml"
    path.write_text("- imagename: a\n  elements: [debian-minimal]\n  sbom: [spdx, cyclonedx]\n"
                    "- imagename: b\n  elements: [debian-minimal]\n  sbom: none\n")
    first, second = manifest.load_manifests([path], environ={})
    assert first.sbom == ("spdx", "cyclonedx") and second.sbom == ()
    path.write_text("- imagename: a\n  elements: [debian-minimal]\n  sbom: [swid]\n")
    with pytest.raises(ConfigError, match="sbom"):
        manifest.load_manifests([path], environ={})
