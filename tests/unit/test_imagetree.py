"""An image's tar read in place answers expectations as the extracted tree
would, with links followed inside the image."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from dib.testing.expect import check_expectations, installed_packages
from dib.testing.imagetree import DirectoryTree, TarTree

STATUS = ("Package: figlet\nStatus: install ok installed\nVersion: 2.2.5-3\n\n"
          "Package: nano\nStatus: deinstall ok config-files\nVersion: 7.2-1\n")


def _add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o644,
         link: str | None = None, hard: str | None = None, directory: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.mode = mode
    if directory:
        info.type = tarfile.DIRTYPE
    elif link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
    elif hard is not None:
        info.type, info.linkname = tarfile.LNKTYPE, hard
    else:
        info.size = len(data or b"")
    tar.addfile(info, io.BytesIO(data or b"") if info.isfile() else None)


@pytest.fixture
def image_tar(tmp_path: Path) -> Path:
    path = tmp_path / "image.tar"
    with tarfile.open(path, "w") as tar:
        for directory in (".", "./usr", "./usr/lib", "./etc", "./var", "./var/lib",
                          "./var/lib/dpkg", "./usr/lib/thing"):
            _add(tar, directory, directory=True, mode=0o755)
        _add(tar, "./lib", link="usr/lib")
        _add(tar, "./usr/lib/os-release", data=b"ID=debian\n")
        _add(tar, "./etc/os-release", link="/usr/lib/os-release")
        _add(tar, "./usr/lib/thing/run", data=b"#!/bin/sh\necho ok\n", mode=0o750)
        _add(tar, "./usr/lib/thing/again", hard="./usr/lib/thing/run", mode=0o750)
        _add(tar, "./etc/loop", link="loop")
        _add(tar, "./etc/dangling", link="/nowhere")
        _add(tar, "./var/lib/dpkg/status", data=STATUS.encode())
    return path


def test_links_are_followed_inside_the_image(image_tar):
    with TarTree(image_tar) as tree:
        assert tree.lexists("/lib/thing/run")              # lib -> usr/lib
        assert tree.read_text("/etc/os-release") == "ID=debian\n"   # absolute link
        assert tree.read_text("lib/thing/again") == "#!/bin/sh\necho ok\n"   # hard link
        assert tree.is_file("/lib/thing/again")
        assert not tree.is_file("/usr/lib/thing")
        assert tree.lexists("/etc/dangling") and not tree.is_file("/etc/dangling")
        assert not tree.lexists("/etc/loop/x")
        assert not tree.lexists("/etc/missing")


def test_modes_are_the_members_own(image_tar):
    with TarTree(image_tar) as tree:
        assert tree.lmode("/lib/thing/run") == 0o750
        assert tree.lmode("/usr/lib") == 0o755
        assert tree.lmode("/etc/missing") is None


def test_expectations_read_from_the_tar_match_the_extracted_tree(image_tar, tmp_path):
    spec = {"files_present": ["/lib/thing/run", "/etc/missing"],
            "files_absent": ["/etc/os-release", "/tmp/nothing"],
            "file_contains": {"/etc/os-release": "ID=debian", "/lib/thing/again": "nope"},
            "modes": {"/usr/lib/thing/run": "0755"},
            "packages_installed": ["figlet", "nano"], "packages_absent": ["figlet"]}
    extracted = tmp_path / "tree"
    extracted.mkdir()
    with tarfile.open(image_tar) as tar:
        tar.extractall(extracted, filter="tar")
    with TarTree(image_tar) as tree:
        from_tar = check_expectations(tree, spec)
        assert installed_packages(tree) == {"figlet": "2.2.5-3"}
    assert from_tar == check_expectations(DirectoryTree(extracted), spec)
    assert from_tar == [
        "/etc/missing: expected to exist, but it is missing",
        "/etc/os-release: expected to be absent, but it exists",
        "/lib/thing/again: does not contain 'nope'",
        "/usr/lib/thing/run: mode is 0750, expected 0755",
        "package nano: expected installed, but it is not",
        "package figlet: expected absent, but version 2.2.5-3 is installed",
    ]


def test_an_absolute_link_in_a_directory_tree_stays_in_the_tree(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").symlink_to("/etc/hostname")   # the host has one
    assert not DirectoryTree(tmp_path).is_file("/etc/passwd")
