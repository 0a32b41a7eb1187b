"""cpio for host-side hooks: dib.runtime.cpio_newc writes what GNU cpio writes,
and the shims that send ``cpio -o -H newc`` (also under sudo) to it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dib.config.build import load_build_config
from dib.pipeline.builder import Builder
from dib.runtime import cpio_newc
from dib.runtime.hostshims import write_cpio_shim, write_sudo_to_shims
from dib.runtime.mounts import in_user_namespace
from dib.runtime.workspace import Workspace

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="needs GNU cpio on the host")


def make_tree(root: Path) -> list[str]:
    """Every kind of member the writer treats apart; returns a name list
    (in find's spirit, with DIB's ``./`` prefixes) that also names what is
    missing, a blank line, and the links of hard-link groups out of order."""
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "small").write_bytes(b"small file\n")
    (root / "empty").write_bytes(b"")
    (root / "odd").write_bytes(b"abc")
    (root / "big").write_bytes(bytes(range(256)) * 4099)   # past the in-buffer size
    (root / "three").write_bytes(b"three links\n")
    os.link(root / "three", root / "dir" / "three-b")
    os.link(root / "three", root / "dir" / "sub" / "three-c")
    (root / "partial").write_bytes(b"only two of three listed\n")
    os.link(root / "partial", root / "dir" / "partial-b")
    os.link(root / "partial", root / "dir" / "partial-unlisted")
    (root / "lone").write_bytes(b"one of two listed\n")
    os.link(root / "lone", root / "dir" / "lone-unlisted")
    (root / "link").symlink_to("dir/sub/three-c")
    (root / "dangling").symlink_to("/nowhere/at/all")
    os.mkfifo(root / "fifo")
    for path in root.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000), follow_symlinks=False)
    return [".", "./dir", "./three", "./small", "", "./dir/sub", ".//empty", "odd", "./big",
            "./partial", "./dir/three-b", "./lone", "./dir/partial-b", "./link", "./dangling",
            "./fifo", "./missing", "./dir/sub/three-c", "./", str(root / "small")]


def run(argv: list, names: bytes, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], input=names, cwd=cwd, capture_output=True)


@needs_cpio
@pytest.mark.parametrize("cpio_args, our_args, separator", [
    (["-o", "-H", "newc"], [], "\n"),
    (["--quiet", "-o", "-H", "newc", "-R", "0:0"], ["--quiet", "--owner", "0:0"], "\n"),
    (["--null", "-o", "--format=newc"], ["--null"], "\0"),
])
def test_the_archive_and_messages_are_gnu_cpios(tmp_path, cpio_args, our_args, separator):
    names = separator.join(make_tree(tmp_path)).encode() + separator.encode()
    real = run(["cpio", *cpio_args], names, tmp_path)
    ours = run([sys.executable, "-m", cpio_newc.__name__, *our_args], names, tmp_path)
    assert real.stdout[:6] == b"070701"
    assert ours.stdout == real.stdout
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr)


@needs_cpio
def test_many_files_linked_from_outside_the_list_as_in_a_deduplicated_cache(tmp_path):
    # files a cache stores once are links of files in other entries: none of
    # their groups completes, and cpio writes them all at the end
    tree, outside = tmp_path / "tree", tmp_path / "elsewhere"
    tree.mkdir()
    outside.mkdir()
    names = ["."]
    for i in range(400):
        path = tree / f"f{i:03d}"
        path.write_bytes(b"x" * (i % 7) + b"\n")
        if i % 3 == 0:
            os.link(path, outside / path.name)
        if i % 5 == 0:
            os.link(path, tree / f"g{i:03d}")
            names.append(f"g{i:03d}")
        names.append(path.name)
    listing = ("\n".join(names) + "\n").encode()
    real = run(["cpio", "-o", "-H", "newc"], listing, tree)
    ours = run([sys.executable, "-m", cpio_newc.__name__], listing, tree)
    assert (ours.returncode, ours.stdout, ours.stderr) == (real.returncode, real.stdout,
                                                          real.stderr)


@needs_cpio
def test_a_file_and_a_pipe_as_output_get_the_same_bytes(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    names = "\n".join(make_tree(tree)).encode() + b"\n"
    with open(tmp_path / "archive", "wb") as out:
        subprocess.run([sys.executable, "-m", cpio_newc.__name__, "--quiet"], input=names,
                       cwd=tree, stdout=out, check=False)
    piped = run([sys.executable, "-m", cpio_newc.__name__, "--quiet"], names, tree)
    assert (tmp_path / "archive").read_bytes() == piped.stdout
    assert len(piped.stdout) % 512 == 0


def test_an_archive_that_cannot_be_written_fails_without_a_traceback(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * (1 << 20))
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-m", cpio_newc.__name__], input=b"big\n",
                                cwd=tmp_path, stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 2
    assert b"No space left on device; archive incomplete" in result.stderr
    assert b"Traceback" not in result.stderr


def test_a_reader_that_went_away_ends_the_writer_by_sigpipe(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * (4 << 20))
    writer = subprocess.Popen([sys.executable, "-m", cpio_newc.__name__], cwd=tmp_path,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    writer.stdout.close()
    _, err = writer.communicate(b"big\n" * 4)
    assert writer.returncode == -13 and b"Traceback" not in err


def test_leading_dot_slashes_are_dropped_while_a_name_is_left():
    assert cpio_newc.archive_name(b"./a/b") == b"a/b"
    assert cpio_newc.archive_name(b"././/a") == b"a"
    assert cpio_newc.archive_name(b"./") == b"./"
    assert cpio_newc.archive_name(b"./.") == b"."
    assert cpio_newc.archive_name(b"/abs/./x") == b"/abs/./x"


# -- the shims --------------------------------------------------------------------------------

def stub(directory: Path, name: str) -> Path:
    """A stand-in host command that prints how it was called."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f'#!/bin/sh\necho "{name}:$*"\n')
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("argv", [
    ["-o", "-H", "newc"], ["--create", "--format=newc", "--quiet"], ["-0", "-o", "-Hnewc"],
    ["-o", "-H", "newc", "-R", "0:0"], ["--owner=0:0", "-o", "--format", "newc"],
])
def test_the_shim_writes_a_newc_archive_itself(tmp_path, argv):
    host = tmp_path / "host"
    stub(host, "cpio")
    assert write_cpio_shim(tmp_path / "bin", path=str(host))
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "f").write_text("data\n")
    names = b"f\0" if "-0" in argv else b"f\n"
    result = run([tmp_path / "bin" / "cpio", *argv], names, tmp_path / "tree")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"070701") and b"data\n" in result.stdout


@pytest.mark.parametrize("argv", [
    ["-i"], ["-t"], ["-o", "-H", "crc"], ["-o"], ["-ov", "-H", "newc"],
    ["-o", "-H", "newc", "-R", "root:root"], ["-o", "-H", "newc", "--reproducible"],
])
def test_the_shim_leaves_every_other_use_to_the_real_cpio(tmp_path, argv):
    host = tmp_path / "host"
    stub(host, "cpio")
    assert write_cpio_shim(tmp_path / "bin", path=str(host))
    result = run([tmp_path / "bin" / "cpio", *argv], b"f\n", tmp_path)
    assert result.stdout.decode() == "cpio:" + " ".join(argv) + "\n"


def test_no_cpio_shim_where_the_host_has_no_cpio(tmp_path):
    assert not write_cpio_shim(tmp_path / "bin", path=str(tmp_path / "empty"))
    assert not (tmp_path / "bin" / "cpio").exists()


@pytest.mark.parametrize("argv, expected", [
    (["cpio", "-o", "-H", "newc"], "-o -H newc"),
    (["-E", "cpio", "-o"], "-E {bin}/cpio -o"),
    (["-u", "root", "-H", "cpio"], "-u root -H {bin}/cpio"),
    (["DIB_X=1", "--", "cpio"], "DIB_X=1 -- {bin}/cpio"),
    (["-u", "cpio", "ls"], "-u cpio ls"),
    (["ls", "cpio"], "ls cpio"),
    (["/usr/bin/cpio", "-o"], "/usr/bin/cpio -o"),
    (["-l"], "-l"),
])
def test_sudo_names_shimmed_commands_by_their_shim(tmp_path, argv, expected):
    host, shims = tmp_path / "host", tmp_path / "bin"
    stub(host, "sudo")
    assert write_cpio_shim(shims, path=f"{host}:{os.environ['PATH']}")
    assert write_sudo_to_shims(shims, path=str(host))
    result = run([shims / "sudo", *argv], b"", tmp_path)
    words = expected.format(bin=shims)
    if argv[0] == "cpio":
        words = f"{shims}/cpio {words}"
    assert result.stdout.decode() == f"sudo:{words}\n"


@needs_cpio
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("sudo") is None,
                    reason="needs root and sudo on the host")
def test_sudo_cpio_in_a_host_hook_gets_gnu_cpios_archive(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    names = "\n".join(make_tree(tree)).encode() + b"\n"
    shims = tmp_path / "bin"
    assert write_cpio_shim(shims, path=os.environ["PATH"])
    assert write_sudo_to_shims(shims, path=os.environ["PATH"])
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
    ours = subprocess.run(["bash", "-c", "sudo cpio -o -H newc"], input=names, cwd=tree,
                          capture_output=True, env=env)
    real = run(["cpio", "-o", "-H", "newc"], names, tree)
    assert (ours.returncode, ours.stdout, ours.stderr) == (real.returncode, real.stdout,
                                                          real.stderr)


@pytest.mark.skipif(in_user_namespace(), reason="a build in a user namespace has a stand-in sudo")
def test_a_root_build_gives_host_hooks_the_cpio_shim_and_a_sudo_that_reaches_it(tmp_path):
    host = tmp_path / "host"
    for name in ("cpio", "sudo", "gzip"):
        stub(host, name)
    config = load_build_config({}, elements=["e"], environ={
        "PATH": str(host), "DIB_CACHE_DIR": str(tmp_path / "cache")})
    prepared = SimpleNamespace(config=config, resolution=SimpleNamespace(names=["e"]))
    ws = Workspace.create(tmp_path / "work")
    Builder(prepared, ws)._write_host_shims()
    assert sorted(p.name for p in ws.host_bin.iterdir()) == ["cpio", "gzip", "sudo"]
    result = run([ws.host_bin / "sudo", "cpio", "-t"], b"", tmp_path)
    assert result.stdout.decode() == f"sudo:{ws.host_bin}/cpio -t\n"
