"""The gzip host-side hooks run: cached parallel members (dib.cache.gzstream)
and the shim that picks it or the real gzip (dib.runtime.hostshims)."""
from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import subprocess
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from dib.cache import gzstream
from dib.config.build import load_build_config
from dib.errors import ConfigError
from dib.pipeline.builder import Builder
from dib.runtime.environment import host_phase_env
from dib.runtime.hostshims import write_host_shims
from dib.runtime.workspace import Workspace

pytestmark = pytest.mark.skipif(shutil.which("cpio") is None or shutil.which("gzip") is None,
                                reason="needs cpio and gzip on the host")


def make_tree(root: Path, files: int = 300, seed: int = 1) -> list[Path]:
    """A tree of text-like files of varied sizes (a few larger than a chunk)."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9)))
             for _ in range(500)]
    paths = []
    for i in range(files):
        path = root / f"d{i % 7}" / f"file-{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = 6 << 20 if i in (100, 101) else rng.choice((0, 3, 100, 5000, 40000, 200000))
        text = b" ".join(rng.choices(words, k=size // 5 + 1))[:size]
        path.write_bytes(text)
        os.utime(path, (1_000_000, 1_000_000))
        paths.append(path)
    return paths


def cpio_of(root: Path) -> bytes:
    names = subprocess.run(["find", ".", "-print"], cwd=root, check=True,
                           capture_output=True).stdout
    # sorted: two listings of the same tree give the same order
    listing = b"\n".join(sorted(names.splitlines())) + b"\n"
    return subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=root,
                          input=listing, check=True, capture_output=True).stdout


def compress(data: bytes, cache: Path | None, level: int = 6) -> tuple[bytes, gzstream.Stats]:
    out = io.BytesIO()
    stats = gzstream.compress_stream(io.BytesIO(data), out, level, cache, workers=2)
    return out.getvalue(), stats


def members(blob: bytes) -> list[bytes]:
    """Each gzip member's decompressed bytes, in order."""
    out = []
    while blob:
        unpacker = zlib.decompressobj(31)
        out.append(unpacker.decompress(blob) + unpacker.flush())
        assert unpacker.eof
        blob = unpacker.unused_data
    return out


def entry_ends(data: bytes) -> set[int]:
    """Offsets where a cpio newc entry ends, up to the trailer."""
    ends, pos = set(), 0
    while pos + 110 <= len(data) and data[pos:pos + 6] == b"070701":
        file_size, name_size = int(data[pos + 54:pos + 62], 16), int(data[pos + 94:pos + 102], 16)
        name = data[pos + 110:pos + 110 + name_size - 1]
        pos = gzstream.align4(gzstream.align4(pos + 110 + name_size) + file_size)
        ends.add(pos)
        if name == b"TRAILER!!!":
            break
    return ends


@pytest.fixture(scope="module")
def tree_and_archive(tmp_path_factory) -> tuple[Path, bytes]:
    root = tmp_path_factory.mktemp("tree")
    make_tree(root)
    return root, cpio_of(root)


def test_cpio_archive_round_trips_through_python_and_gunzip(tree_and_archive, tmp_path):
    _, archive = tree_and_archive
    blob, stats = compress(archive, tmp_path / "cache")
    assert stats.members > 5
    assert gzip.decompress(blob) == archive
    gunzipped = subprocess.run(["gunzip", "-c"], input=blob, check=True,
                               capture_output=True).stdout
    assert gunzipped == archive


@pytest.mark.parametrize("data", [
    b"",
    b"0707",
    b"070701" + b"z" * 200,            # looks like cpio, is not
    random.Random(3).randbytes(3 << 20),
    b"plain text\n" * 300000,
])
def test_other_input_round_trips(data, tmp_path):
    blob, _ = compress(data, tmp_path / "cache")
    assert gzip.decompress(blob) == data
    assert subprocess.run(["gunzip", "-c"], input=blob, check=True,
                          capture_output=True).stdout == data


def test_every_member_ends_where_an_entry_ends(tree_and_archive, tmp_path):
    # the kernel's initramfs unpacker rejects a member ending inside an entry
    _, archive = tree_and_archive
    blob, _ = compress(archive, tmp_path / "cache")
    ends = entry_ends(archive)
    offset = 0
    parts = members(blob)
    for part in parts[:-1]:
        offset += len(part)
        if offset > max(ends):
            break  # past the trailer: zero padding
        assert offset in ends
    assert offset <= len(archive)


def test_second_run_takes_every_member_from_the_cache(tree_and_archive, tmp_path):
    _, archive = tree_and_archive
    first, stats = compress(archive, tmp_path / "cache")
    assert stats.cached == 0
    second, stats = compress(archive, tmp_path / "cache")
    assert stats.cached == stats.members
    assert second == first


def test_one_changed_file_recompresses_only_its_chunk(tmp_path):
    root = tmp_path / "tree"
    paths = make_tree(root, seed=5)
    cache = tmp_path / "cache"
    _, before = compress(cpio_of(root), cache)
    middle = paths[len(paths) // 2]
    middle.write_bytes(b"changed " + middle.read_bytes()[8:])
    os.utime(middle, (2_000_000, 2_000_000))
    archive = cpio_of(root)
    blob, stats = compress(archive, cache)
    assert gzip.decompress(blob) == archive
    assert (stats.members, stats.compressed) == (before.members, 1)
    # and a file that grows shifts nothing but the chunks up to the next cut by name
    middle.write_bytes(middle.read_bytes() + b"x" * 70000)
    _, stats = compress(cpio_of(root), cache)
    assert 1 <= stats.compressed <= 3


@pytest.mark.parametrize("engine", ["zlib", "libdeflate"])
def test_each_engine_makes_members_that_depend_only_on_chunk_and_level(tree_and_archive, engine):
    if engine == "libdeflate" and gzstream.compressor() != "libdeflate":
        pytest.skip("the host has no libdeflate0")
    _, archive = tree_and_archive
    chunk = memoryview(bytearray(archive))[:300_000]
    member = gzstream.compress_member(chunk, 6, engine)
    assert gzip.decompress(member) == bytes(chunk)
    assert gzstream.compress_member(bytes(chunk), 6, engine) == member
    assert gzip.decompress(gzstream.compress_member(b"", 9, engine)) == b""


def test_without_a_cache_it_still_round_trips(tree_and_archive):
    _, archive = tree_and_archive
    blob, stats = compress(archive, None, level=1)
    assert stats.cached == 0 and gzip.decompress(blob) == archive


def test_a_damaged_cached_member_is_made_again(tree_and_archive, tmp_path):
    _, archive = tree_and_archive
    cache = tmp_path / "cache"
    compress(archive, cache)
    for member in cache.glob(f"{gzstream.member_dir_name(6)}/*/*.gz"):
        member.write_bytes(member.read_bytes()[:-3])
    blob, stats = compress(archive, cache)
    assert stats.cached == 0 and gzip.decompress(blob) == archive


def test_prune_removes_the_least_recently_used_members(tmp_path):
    store = gzstream.MemberCache(tmp_path, 6)
    for age, name in enumerate(("old", "mid", "new")):
        digest = name.ljust(64, "0")
        path = store.put(digest, b"x" * 100)
        os.utime(path, (1000 + age, 1000 + age))
    assert gzstream.prune(tmp_path, 250) == 1
    kept = tmp_path.glob(f"{gzstream.member_dir_name(6)}/*/*.gz")
    assert sorted(p.name[:3] for p in kept) == ["mid", "new"]


def test_prune_removes_what_a_killed_run_left_half_written(tmp_path):
    store = gzstream.MemberCache(tmp_path, 6)
    kept = store.put("a" * 64, b"x" * 10)
    old, fresh = kept.parent / ".tmp-old", kept.parent / ".tmp-fresh"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(old, (1000, 1000))
    gzstream.prune(tmp_path, 1 << 20)
    assert sorted(p.name for p in kept.parent.iterdir()) == [".tmp-fresh", kept.name]


# -- the shim ---------------------------------------------------------------------------------


@pytest.fixture
def shim(tmp_path) -> tuple[Path, Path]:
    cache = tmp_path / "gzip-cache"
    assert write_host_shims(tmp_path / "bin", path=os.environ["PATH"], cache=cache)
    return tmp_path / "bin" / "gzip", cache


def run(argv: list, data: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], input=data, capture_output=True, cwd=cwd)


@pytest.mark.parametrize("argv, level", [([], 6), (["-9", "-n", "-c"], 9), (["--fast", "-q"], 1),
                                         (["-f", "--best"], 9)])
def test_shim_compresses_a_stream_through_the_cache(shim, tree_and_archive, argv, level):
    path, cache = shim
    _, archive = tree_and_archive
    result = run([path, *argv], archive)
    assert result.returncode == 0, result.stderr
    assert gzip.decompress(result.stdout) == archive
    assert [p.name for p in cache.iterdir()] == [gzstream.member_dir_name(level)]


def test_shim_ignores_python_modules_in_the_working_directory(shim, tmp_path):
    # ramdisk hooks run it from the image's tree, which may hold anything
    path, _ = shim
    (tmp_path / "tree" / "dib").mkdir(parents=True)
    (tmp_path / "tree" / "dib" / "__init__.py").write_text("raise SystemExit(9)\n")
    result = run([path], b"data\n" * 100, cwd=tmp_path / "tree")
    assert result.returncode == 0, result.stderr
    assert gzip.decompress(result.stdout) == b"data\n" * 100


@pytest.mark.parametrize("argv", [["-d"], ["-dc"], ["-t"], ["--decompress", "-c"]])
def test_shim_passes_decompression_and_tests_to_gzip(shim, argv):
    path, cache = shim
    packed = gzip.compress(b"some data\n" * 1000)
    ours, real = run([path, *argv], packed), run(["gzip", *argv], packed)
    assert (ours.returncode, ours.stdout, ours.stderr) == (real.returncode, real.stdout,
                                                          real.stderr)
    assert not cache.exists()


def test_shim_passes_files_and_listing_to_gzip(shim, tmp_path):
    path, cache = shim
    for where, command in (("ours", path), ("real", "gzip")):
        (tmp_path / where).mkdir()
        data = tmp_path / where / "data.txt"
        data.write_bytes(b"file contents\n" * 5000)
        os.utime(data, (1_000_000, 1_000_000))
        assert run([command, "-9", "data.txt"], cwd=tmp_path / where).returncode == 0
    ours, real = tmp_path / "ours" / "data.txt.gz", tmp_path / "real" / "data.txt.gz"
    assert ours.read_bytes() == real.read_bytes()
    assert run([path, "-l", ours]).stdout == run(["gzip", "-l", ours]).stdout
    assert not cache.exists()


def test_shim_fails_loudly_when_it_cannot_finish(shim, tree_and_archive):
    # a full disk under the output: the pipeline must fail, not leave half a file
    path, _ = shim
    with open("/dev/full", "wb") as full:
        result = subprocess.run([str(path)], input=tree_and_archive[1], stdout=full,
                                stderr=subprocess.PIPE)
    assert result.returncode != 0
    assert b"dib gzip shim: compressing failed, output incomplete" in result.stderr
    assert b"Traceback" not in result.stderr


def test_a_cache_that_cannot_be_written_costs_speed_not_the_archive(tmp_path,
                                                                     tree_and_archive):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert write_host_shims(tmp_path / "bin", path=os.environ["PATH"], cache=blocker)
    result = run([tmp_path / "bin" / "gzip"], tree_and_archive[1])
    assert result.returncode == 0
    assert gzip.decompress(result.stdout) == tree_and_archive[1]
    assert b"warning: members not kept in" in result.stderr


def test_host_phases_find_the_shim_before_the_host_gzip(tmp_path):
    ws = Workspace(tmp_path)
    assert write_host_shims(ws.host_bin, path=os.environ["PATH"], cache=None)
    env = host_phase_env({"PATH": os.environ["PATH"]}, ws)
    found = subprocess.run(["bash", "-c", "command -v gzip"], env=env, capture_output=True,
                           text=True)
    assert found.stdout.strip() == str(ws.host_bin / "gzip")


def test_without_shims_host_phases_use_the_host_gzip(tmp_path):
    env = host_phase_env({"PATH": os.environ["PATH"]}, Workspace(tmp_path))
    assert not env["PATH"].startswith(str(tmp_path))


def builder_shim(tmp_path: Path, environ: dict[str, str]) -> Path:
    """Where a build with this environment puts its gzip shim."""
    config = load_build_config({}, elements=["e"], environ={
        "PATH": os.environ["PATH"], "DIB_CACHE_DIR": str(tmp_path / "cache"), **environ})
    prepared = SimpleNamespace(config=config, resolution=SimpleNamespace(names=["e"]))
    ws = Workspace.create(tmp_path / "work")
    Builder(prepared, ws)._write_host_shims()
    return ws.host_bin / "gzip"


def test_a_build_keeps_members_in_its_cache_directory(tmp_path):
    shim = builder_shim(tmp_path, {})
    assert run([shim], b"data\n" * 1000).returncode == 0
    members = tmp_path / "cache" / gzstream.CACHE_SUBDIR / gzstream.member_dir_name(6)
    assert list(members.glob("*/*.gz"))


def test_no_cache_compresses_but_keeps_nothing(tmp_path):
    shim = builder_shim(tmp_path, {"DIB_NO_CACHE": "1"})
    result = run([shim], b"data\n" * 1000)
    assert gzip.decompress(result.stdout) == b"data\n" * 1000
    assert not (tmp_path / "cache").exists()


def test_dib_gzip_cache_0_leaves_hooks_the_system_gzip(tmp_path):
    assert not builder_shim(tmp_path, {"DIB_GZIP_CACHE": "0"}).exists()


def test_a_malformed_dib_gzip_cache_is_named(tmp_path):
    with pytest.raises(ConfigError, match="DIB_GZIP_CACHE"):
        builder_shim(tmp_path, {"DIB_GZIP_CACHE": "sometimes"})
