"""A gzip stream compressor whose output is made of cached, independent members.

Ramdisk hooks pack a whole tree with ``cpio -o -H newc | gzip``; compressing a
1 GB archive on one core takes longer than the rest of a warm build. dib puts
a ``gzip`` shim first on the PATH of host-side phases; when it is used as a
plain stream compressor it runs this module instead of the real gzip.

The input is cut into chunks, each compressed as a gzip member of its own on
every core; concatenated members are one valid gzip stream (RFC 1952, 2.2).
A cpio newc archive is cut only between entries, because the kernel's
initramfs unpacker insists that each compressed member ends where an entry
ends. Where a cut falls depends on the entry names (and a size cap), not on
offsets, so a file changed in one build changes only the chunk holding it
(and, if its size changed, at most the chunks up to the next cut by name);
every other member is read back from the cache, keyed by the chunk's SHA-256,
the level and the engine (libdeflate where the host has it, else zlib).

    DIB_CACHE_DIR/gzip/<engine>-L<level>/<first two hex digits>/<sha256>.gz

holds one member each; a file's mtime is its last use.
"""
from __future__ import annotations

import argparse
import ctypes
import functools
import hashlib
import os
import sys
import tempfile
import time
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from dib.errors import DibError

# under the cache directory (DIB_CACHE_DIR), beside phases/
CACHE_SUBDIR = "gzip"
NEWC_MAGICS = (b"070701", b"070702")
HEADER_SIZE = 110
TRAILER = b"TRAILER!!!"
# A chunk ends after an entry whose name hashes to 0 modulo this, so cuts
# follow names: about one entry in 64, a few hundred KiB to a few MiB of a
# typical root tree.
CUT_MODULUS = 64
# ... or once it is this large, so that one part of the tree full of big
# files still spreads over the cores.
MAX_CHUNK = 4 << 20
# Chunk size for input that is not a cpio newc archive.
PLAIN_CHUNK = 1 << 20
READ_SIZE = 4 << 20
MAX_READ = 64 << 20
# A read shorter than this means the writer is slower than we are ...
SMALL_READ = 256 << 10
# ... and we wait this long (seconds) for it to fill the pipe.
PIPE_NAP = 0.0005
DEFAULT_MAX_CACHE = 2 << 30
# A staging file this old belongs to no running build.
STALE_TMP_SECONDS = 3600
# A member is the gzip header (10 bytes), deflate data and an 8-byte trailer.
MIN_MEMBER = 18
LIBDEFLATE = "libdeflate.so.0"


@dataclass
class Stats:
    members: int = 0
    cached: int = 0
    #: the first reason a member could not be stored, if any was not
    not_stored: str | None = None

    @property
    def compressed(self) -> int:
        return self.members - self.cached


def align4(offset: int) -> int:
    return (offset + 3) & ~3


class Reader:
    """A window on a byte stream, read in large blocks. Chunks are views into
    those blocks, so the bytes are copied once, when read, and only an
    entry that straddles two blocks is copied again."""

    def __init__(self, readinto: Callable[[memoryview], int | None]) -> None:
        self._readinto = readinto
        self.buf = memoryview(b"")
        self.eof = False

    def fill(self, size: int) -> bool:
        """Whether the window holds at least ``size`` bytes (reading as needed)."""
        while len(self.buf) < size and not self.eof:
            # a damaged header may claim gigabytes: grow by bounded steps
            want = len(self.buf) + min(max(READ_SIZE, size - len(self.buf)), MAX_READ)
            block = bytearray(want)
            view = memoryview(block)
            view[:len(self.buf)] = self.buf
            got = len(self.buf)
            while got < want:
                count = self._readinto(view[got:])
                if not count:
                    self.eof = True
                    break
                got += count
                if count < SMALL_READ:
                    # cpio writes 512 bytes at a time: reading each as it
                    # comes costs a wake-up per write and doubled the
                    # pipeline's time; a short nap lets the pipe fill
                    time.sleep(PIPE_NAP)
            self.buf = view[:got]
        return len(self.buf) >= size

    def take(self, size: int) -> memoryview:
        chunk, self.buf = self.buf[:size], self.buf[size:]
        return chunk


def chunks(readinto: Callable[[memoryview], int | None]) -> Iterator[memoryview]:
    """The stream cut into chunks: between cpio newc entries when it is one."""
    reader = Reader(readinto)
    if reader.fill(len(NEWC_MAGICS[0])) and bytes(reader.buf[:6]) in NEWC_MAGICS:
        yield from _cpio_chunks(reader)
    yield from _plain_chunks(reader)


def _cpio_chunks(reader: Reader) -> Iterator[memoryview]:
    """Chunks that each end where an entry (header, name, data, padding)
    ends. Stops, leaving the rest to _plain_chunks, at the first thing that is
    not an entry header: the trailer's zero padding, or a damaged archive
    (which is compressed as it is; gzip does not judge its input)."""
    end = 0  # where the current chunk ends so far, inside reader.buf
    while True:
        entry = _entry_at(reader, end)
        if entry is None:
            if end:
                yield reader.take(end)
            return
        name, entry_end = entry
        end = entry_end
        # after the trailer come zero blocks (or anything): plain chunks
        if name == TRAILER or end >= MAX_CHUNK or zlib.crc32(name) % CUT_MODULUS == 0:
            yield reader.take(end)
            if name == TRAILER:
                return
            end = 0


def _entry_at(reader: Reader, start: int) -> tuple[bytes, int] | None:
    """The name and end of the entry whose header is at ``start``, with all
    of it in the window; None where there is no whole entry."""
    if not reader.fill(start + HEADER_SIZE):
        return None
    header = bytes(reader.buf[start:start + HEADER_SIZE])
    if header[:6] not in NEWC_MAGICS:
        return None
    try:
        file_size = int(header[54:62], 16)
        name_size = int(header[94:102], 16)
    except ValueError:
        return None
    if name_size < 1:
        return None
    # chunks are cut at entry ends, which are 4-aligned, so offsets in the
    # window align as offsets in the archive do
    data_start = align4(start + HEADER_SIZE + name_size)
    end = align4(data_start + file_size)
    if not reader.fill(end):
        return None
    name = bytes(reader.buf[start + HEADER_SIZE:start + HEADER_SIZE + name_size - 1])
    return name, end


def _plain_chunks(reader: Reader) -> Iterator[memoryview]:
    while reader.fill(PLAIN_CHUNK):
        yield reader.take(PLAIN_CHUNK)
    if reader.buf:
        yield reader.take(len(reader.buf))


@functools.cache
def _libdeflate() -> ctypes.CDLL | None:
    """Debian's libdeflate0, if the host has it: at level 6 it compresses a
    root tree's archive twice as fast as zlib, and a little smaller."""
    try:
        lib = ctypes.CDLL(LIBDEFLATE)
    except OSError:
        return None
    lib.libdeflate_alloc_compressor.restype = ctypes.c_void_p
    lib.libdeflate_alloc_compressor.argtypes = [ctypes.c_int]
    lib.libdeflate_free_compressor.restype = None
    lib.libdeflate_free_compressor.argtypes = [ctypes.c_void_p]
    lib.libdeflate_gzip_compress_bound.restype = ctypes.c_size_t
    lib.libdeflate_gzip_compress_bound.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.libdeflate_gzip_compress.restype = ctypes.c_size_t
    lib.libdeflate_gzip_compress.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                             ctypes.c_void_p, ctypes.c_size_t]
    return lib


def compressor() -> str:
    """The deflate implementation members are made with on this host."""
    return "libdeflate" if _libdeflate() is not None else "zlib"


def compress_member(chunk: bytes | memoryview, level: int, engine: str | None = None) -> bytes:
    """One gzip member, with mtime 0 and no name, so that it depends only on
    the chunk, the level and the engine (``compressor()`` unless named)."""
    if (engine or compressor()) == "libdeflate":
        return _libdeflate_member(chunk, level)
    packer = zlib.compressobj(level, zlib.DEFLATED, 31)
    return packer.compress(chunk) + packer.flush()


def _libdeflate_member(chunk: bytes | memoryview, level: int) -> bytes:
    lib = _libdeflate()
    if lib is None:
        raise DibError(f"{LIBDEFLATE} cannot be loaded")
    view = memoryview(chunk)
    if view.readonly or not view:
        source = ctypes.create_string_buffer(bytes(view), max(len(view), 1))
    else:
        source = (ctypes.c_char * len(view)).from_buffer(view)
    packer = lib.libdeflate_alloc_compressor(level)
    if not packer:
        raise MemoryError("libdeflate: no memory for a compressor")
    try:
        bound = lib.libdeflate_gzip_compress_bound(packer, len(view))
        out = ctypes.create_string_buffer(bound)
        # ctypes lets go of the GIL for the call: members compress on every core
        size = lib.libdeflate_gzip_compress(packer, ctypes.addressof(source), len(view),
                                            out, bound)
    finally:
        lib.libdeflate_free_compressor(packer)
    if size == 0:
        raise DibError("libdeflate: the member did not fit its bound")
    return ctypes.string_at(out, size)


def member_dir_name(level: int, engine: str | None = None) -> str:
    return f"{engine or compressor()}-L{level}"


class MemberCache:
    """Members on disk by chunk digest. Entries appear by rename, so a
    concurrent build reads a whole member or none; one that vanished under a
    prune is a miss."""

    def __init__(self, root: Path, level: int) -> None:
        self.root = root
        # one directory per engine too: the same chunk always gives the same
        # member, whichever engine made those already kept
        self.dir = root / member_dir_name(level)
        #: why members could not be stored (the output is whole all the same)
        self.failures: list[str] = []

    def path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.gz"

    def get(self, digest: str, chunk_size: int) -> bytes | None:
        path = self.path(digest)
        try:
            member = path.read_bytes()
        except OSError:
            return None  # pruned meanwhile, or unreadable: made again
        try:
            os.utime(path)
        except OSError:
            pass  # a read-only cache: only its pruning order suffers
        # the trailer's last field is the chunk's size modulo 2**32: a cheap
        # check that the file is whole
        if (len(member) < MIN_MEMBER
                or int.from_bytes(member[-4:], "little") != chunk_size & 0xFFFFFFFF):
            return None
        return member

    def put(self, digest: str, member: bytes) -> Path:
        path = self.path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(member)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def prune(root: Path, max_bytes: int) -> int:
    """Remove the least recently used members until the cache holds at most
    max_bytes, and what killed runs left half-written; returns how many
    members were removed."""
    stale = time.time() - STALE_TMP_SECONDS
    for tmp in root.glob("*L[1-9]/*/.tmp-*"):
        try:
            if tmp.stat().st_mtime < stale:
                tmp.unlink()
        except FileNotFoundError:
            continue
    files = []
    for path in root.glob("*L[1-9]/*/*.gz"):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        files.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in files)
    removed = 0
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed += 1
    return removed


def _member_for(chunk: memoryview, level: int, cache: MemberCache | None
                ) -> tuple[bytes, bool]:
    """The member and whether it came from the cache. Runs in a worker
    thread; the compressors and hashlib release the GIL on big buffers, so
    chunks compress on every core."""
    if cache is None:
        return compress_member(chunk, level), False
    digest = hashlib.sha256(chunk).hexdigest()
    member = cache.get(digest, len(chunk))
    if member is not None:
        return member, True
    member = compress_member(chunk, level)
    try:
        cache.put(digest, member)
    except OSError as exc:
        cache.failures.append(str(exc))
    return member, False


def compress_stream(source: BinaryIO, sink: BinaryIO, level: int,
                    cache_root: Path | None, workers: int | None = None) -> Stats:
    """source compressed into sink as a series of gzip members, in order."""
    stats = Stats()
    cache = MemberCache(cache_root, level) if cache_root is not None else None
    workers = workers or os.cpu_count() or 1
    pending: deque[Future[tuple[bytes, bool]]] = deque()

    def write_next() -> None:
        member, hit = pending.popleft().result()
        sink.write(member)
        stats.members += 1
        stats.cached += hit

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for chunk in chunks(source.readinto):
            pending.append(pool.submit(_member_for, chunk, level, cache))
            # bounded read-ahead: memory stays a few chunks per core
            while len(pending) > 2 * workers:
                write_next()
        while pending:
            write_next()
        if stats.members == 0:
            sink.write(compress_member(b"", level))
            stats.members = 1
    sink.flush()
    if cache is not None and cache.failures:
        stats.not_stored = cache.failures[0]
    return stats


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dib-gzip", description="Compress stdin to stdout as cached gzip members.")
    parser.add_argument("--level", type=int, choices=range(1, 10), default=6)
    parser.add_argument("--cache", type=Path, default=None,
                        help="directory of cached members (none: compress every chunk)")
    parser.add_argument("--max-cache", type=int, default=DEFAULT_MAX_CACHE,
                        help="bytes the cache may hold after this run")
    return parser.parse_args(argv)


def _widen_pipe(fd: int) -> None:
    """Fewer, larger reads from the cpio pipe; an optimisation only."""
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    _widen_pipe(0)
    try:
        if sys.stdout.isatty():
            raise DibError("compressed data not written to a terminal")
        # unbuffered: each read is one read(2) straight into the block
        with open(sys.stdin.fileno(), "rb", buffering=0, closefd=False) as source:
            stats = compress_stream(source, sys.stdout.buffer, args.level, args.cache)
    except Exception as exc:  # noqa: BLE001 - any failure must fail the pipeline
        # exit non-zero: the hook's pipefail then fails the build rather
        # than leaving a truncated archive behind
        print(f"dib gzip shim: compressing failed, output incomplete: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"dib gzip shim: {stats.members} members, {stats.cached} from cache "
          f"({args.cache or 'no cache'})", file=sys.stderr)
    # the output is whole from here on: the cache's troubles are warnings
    if stats.not_stored:
        print(f"dib gzip shim: warning: members not kept in {args.cache} "
              f"({stats.not_stored}); the next build compresses them again",
              file=sys.stderr)
    if args.cache is not None and stats.compressed:
        try:
            prune(args.cache, args.max_cache)
        except OSError as exc:
            print(f"dib gzip shim: warning: could not prune {args.cache}: {exc}",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
