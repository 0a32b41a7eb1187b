"""``cpio -o -H newc`` for host-side hooks, byte for byte as GNU cpio 2.13 writes it.

Ramdisk hooks pack the whole tree with ``find | cpio -o -H newc``. GNU cpio
reads and writes 512 bytes at a time: about three seconds for the deploy
ramdisk's 1.2 GB, most of a warm rebuild. This writer reads the same list of
names and copies file data in large blocks (``sendfile`` where the kernel
allows it), and keeps every rule of GNU cpio's newc output that the archive's
bytes depend on:

* a leading ``./`` (and the slashes after it) is dropped from a name that
  goes on, as cpio does; an empty line names nothing;
* a regular file with more than one link is held back until its last link
  in the list: the held-back names are then written first with no data,
  newest first, and the last one carries the data; links whose group never
  completes are written at the end, the last of each group with the data;
* the trailer ``TRAILER!!!`` ends the archive, padded with zeros to 512 bytes;
* a name that cannot be read is reported as cpio reports it and skipped, and
  the exit status is then 2; the block count goes to stderr unless ``--quiet``.

The shim (``runtime/hostshims.py``) sends here only the options this module
handles; any other use runs the real cpio.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import stat
import sys
from dataclasses import dataclass
from typing import BinaryIO, Iterator

MAGIC = b"070701"
BLOCK = 512
TRAILER_NAME = b"TRAILER!!!"
FIELD_MAX = 0xFFFFFFFF
# Files up to this size are read into the output buffer; larger ones are
# copied from the file to the output by the kernel.
SMALL_FILE = 64 << 10
FLUSH_AT = 1 << 20
SENDFILE_CHUNK = 1 << 30


@dataclass(frozen=True)
class Entry:
    """One archive member: the name as written and what lstat said of it."""
    name: bytes
    path: bytes
    mode: int
    ino: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    size: int
    dev: int
    rdev: int

    @property
    def link_key(self) -> tuple[int, int]:
        return self.dev, self.ino


def archive_name(line: bytes) -> bytes:
    """The name cpio writes for a line of its input: leading ``./`` dropped
    while a name is left after it."""
    name = line
    while name.startswith(b"./"):
        rest = name[2:].lstrip(b"/")
        if not rest:
            break
        name = rest
    return name


def entry_for(line: bytes, owner: tuple[int, int] | None = None) -> Entry:
    """Raises OSError when the name cannot be stat'ed. ``owner`` (uid, gid)
    replaces the file's own, as ``-R UID:GID`` does."""
    st = os.lstat(line)
    regular_or_link = stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)
    uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
    return Entry(name=archive_name(line), path=line, mode=st.st_mode, ino=st.st_ino,
                 uid=uid, gid=gid, nlink=st.st_nlink, mtime=int(st.st_mtime),
                 size=st.st_size if regular_or_link else 0, dev=st.st_dev, rdev=st.st_rdev)


def pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


class Writer:
    """The archive to a file descriptor, through one buffer."""

    def __init__(self, fd: int, err: BinaryIO) -> None:
        self.fd = fd
        self.err = err
        self.buf = bytearray()
        self.written = 0
        self.errors = 0

    # -- reporting, as cpio words it ---------------------------------------

    def problem(self, name: bytes, what: str, exc: OSError | None = None) -> None:
        detail = f": {exc.strerror}" if exc is not None and exc.strerror else ""
        self.err.write(b"cpio: " + name + f": {what}{detail}\n".encode())
        self.errors += 1

    def warn(self, name: bytes, message: str) -> None:
        self.err.write(b"cpio: " + name + f": {message}\n".encode())

    # -- output ---------------------------------------------------------------

    def put(self, data: bytes | bytearray | memoryview) -> None:
        self.buf += data
        if len(self.buf) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        with memoryview(self.buf) as whole:
            view = whole
            while view:
                view = view[os.write(self.fd, view):]
            view.release()
        self.written += len(self.buf)
        self.buf.clear()

    def field(self, entry: Entry, value: int, what: str) -> bytes:
        if value > FIELD_MAX:
            self.warn(entry.path, f"truncating {what}")
            value &= FIELD_MAX
        return b"%08X" % value

    def header(self, entry: Entry, size: int) -> None:
        name = entry.name + b"\0"
        fields = (
            self.field(entry, entry.ino, "inode number"),
            b"%08X" % entry.mode,
            self.field(entry, entry.uid, "uid"),
            self.field(entry, entry.gid, "gid"),
            b"%08X" % entry.nlink,
            self.field(entry, entry.mtime, "modification time"),
            self.field(entry, size, "file size"),
            b"%08X" % os.major(entry.dev), b"%08X" % os.minor(entry.dev),
            b"%08X" % os.major(entry.rdev), b"%08X" % os.minor(entry.rdev),
            b"%08X" % len(name),
            b"00000000",
        )
        head = MAGIC + b"".join(fields) + name
        self.put(head + pad4(len(head)))

    def member(self, entry: Entry) -> None:
        """One member with its data."""
        if stat.S_ISLNK(entry.mode):
            self._symlink(entry)
        elif stat.S_ISREG(entry.mode):
            self._regular(entry)
        else:
            self.header(entry, 0)

    def _symlink(self, entry: Entry) -> None:
        try:
            target = os.readlink(entry.path)
        except OSError as exc:
            self.problem(entry.path, "Cannot read", exc)
            return
        self.header(entry, len(target))
        self.put(target + pad4(len(target)))

    def _regular(self, entry: Entry) -> None:
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except OSError as exc:
            self.problem(entry.path, "Cannot open", exc)
            return
        try:
            self.header(entry, entry.size)
            copied = self._copy(fd, entry.size)
        finally:
            os.close(fd)
        if copied < entry.size:
            shrunk = f" shrunk by {entry.size - copied} bytes, padding with zeros\n"
            self.err.write(b"cpio: File " + entry.path + shrunk.encode())
            self.put(b"\0" * (entry.size - copied))
        self.put(pad4(entry.size))

    def _copy(self, fd: int, size: int) -> int:
        """Up to ``size`` bytes of ``fd`` into the archive; returns how many."""
        if size <= SMALL_FILE:
            data = os.read(fd, size)
            self.put(data)
            return len(data)
        self.flush()
        copied = 0
        try:
            while copied < size:
                sent = os.sendfile(self.fd, fd, copied, min(size - copied, SENDFILE_CHUNK))
                if sent == 0:
                    break
                copied += sent
                self.written += sent
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                raise
            # an output the kernel cannot sendfile to: copy by reading
            os.lseek(fd, copied, os.SEEK_SET)
            while copied < size:
                data = os.read(fd, min(size - copied, FLUSH_AT))
                if not data:
                    break
                self.put(data)
                copied += len(data)
        return copied

    def trailer(self) -> None:
        entry = Entry(name=TRAILER_NAME, path=TRAILER_NAME, mode=0, ino=0, uid=0, gid=0,
                      nlink=1, mtime=0, size=0, dev=0, rdev=0)
        self.header(entry, 0)
        self.put(b"\0" * (-(self.written + len(self.buf)) % BLOCK))
        self.flush()


class LinkHolder:
    """GNU cpio's deferred hard links of the newc format. cpio keeps them in
    one list, newest first, and searches it for each link; a tree whose
    files have links outside the list (a cache that stores equal files once)
    holds tens of thousands, so here they are indexed by link as well."""

    def __init__(self) -> None:
        self._serial = 0
        #: serial -> entry, oldest first
        self.held: dict[int, Entry] = {}
        #: link key -> serials of its held entries, oldest first
        self.groups: dict[tuple[int, int], list[int]] = {}

    def admit(self, entry: Entry, out: Writer) -> bool:
        """Whether ``entry`` is written now; before it, the links held back
        for it are written without data, newest first."""
        if not stat.S_ISREG(entry.mode) or entry.nlink <= 1:
            return True
        group = self.groups.setdefault(entry.link_key, [])
        if entry.nlink != len(group) + 1:
            self._serial += 1
            self.held[self._serial] = entry
            group.append(self._serial)
            return False
        for serial in reversed(group):
            out.header(self.held.pop(serial), 0)
        del self.groups[entry.link_key]
        return True

    def finish(self, out: Writer) -> None:
        """The links whose group never completed, newest first; the last one
        written of each group carries the data."""
        remaining = {key: len(group) for key, group in self.groups.items()}
        for entry in reversed(self.held.values()):
            remaining[entry.link_key] -= 1
            if remaining[entry.link_key] == 0:
                out.member(entry)
            else:
                out.header(entry, 0)
        self.held.clear()
        self.groups.clear()


def names(stream: BinaryIO, separator: bytes) -> Iterator[bytes]:
    pending = b""
    for block in iter(lambda: stream.read(1 << 16), b""):
        pending += block
        *lines, pending = pending.split(separator)
        yield from lines
    if pending:
        yield pending


def write_archive(stream: BinaryIO, out_fd: int, err: BinaryIO, *,
                  separator: bytes = b"\n", quiet: bool = False,
                  owner: tuple[int, int] | None = None) -> int:
    """The archive of the names on ``stream``; returns cpio's exit status."""
    out = Writer(out_fd, err)
    links = LinkHolder()
    for line in names(stream, separator):
        if not line:
            err.write(b"cpio: blank line ignored\n")
            continue
        try:
            entry = entry_for(line, owner)
        except OSError as exc:
            out.problem(line, "Cannot stat", exc)
            continue
        if links.admit(entry, out):
            out.member(entry)
    links.finish(out)
    out.trailer()
    if not quiet:
        blocks = out.written // BLOCK
        err.write(f"{blocks} block{'' if blocks == 1 else 's'}\n".encode())
    err.flush()
    return 2 if out.errors else 0


def owner_ids(text: str) -> tuple[int, int]:
    uid, _, gid = text.partition(":")
    return int(uid), int(gid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cpio", description=__doc__.splitlines()[0])
    parser.add_argument("--null", action="store_true", help="names end with NUL, not newline")
    parser.add_argument("--quiet", action="store_true", help="no block count on stderr")
    parser.add_argument("--owner", type=owner_ids, help="UID:GID every member is given")
    args = parser.parse_args(argv)
    # a reader that went away ends us as it ends cpio, by SIGPIPE
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return write_archive(sys.stdin.buffer, sys.stdout.fileno(), sys.stderr.buffer,
                             separator=b"\0" if args.null else b"\n", quiet=args.quiet,
                             owner=args.owner)
    except OSError as exc:
        # the archive cannot be written (a full disk) or a file read
        # fails half-way: the pipeline must fail, without a traceback
        where = f"{os.fsdecode(exc.filename)}: " if exc.filename else ""
        print(f"cpio: {where}{exc.strerror or exc}; archive incomplete", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
