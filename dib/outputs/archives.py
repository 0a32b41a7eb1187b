"""Tree outputs: tar, tgz, squashfs, docker (a ``docker load``-able archive)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Sequence

from dib import runner
from dib.errors import ConfigError, OutputError
from dib.outputs.base import Output, OutputContext
from dib.runtime.devnodes import CHAR, DIR, LINK, DevEntry

#: tree paths whose contents never go into an archive (DIB leaves out proc and sys)
EXCLUDED = ("./proc/*", "./sys/*")


def tar_argv(tree: Path, dest: Path, source_date_epoch: int | None = None) -> list[str]:
    argv = ["tar", "--create", "--file", str(dest), "--directory", str(tree),
            "--xattrs", "--xattrs-include=*", "--numeric-owner", "--sort=name"]
    argv += [f"--exclude={pattern}" for pattern in EXCLUDED]
    if source_date_epoch is not None:
        # --xattrs makes a pax archive, whose headers would also carry each
        # file's atime and ctime: the moments this build read and made it.
        argv += [f"--mtime=@{source_date_epoch}", "--clamp-mtime",
                 "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"]
    return argv + ["."]


def tar_of_tree(ctx: OutputContext, dest: Path, what: str) -> None:
    """The tree as a tar at ``dest``, with the /dev entries it lacks."""
    runner.run(tar_argv(ctx.tree, dest, ctx.source_date_epoch), what=what)
    insert_dev_entries(dest, ctx.dev_nodes)


_TAR_TYPES = {CHAR: tarfile.CHRTYPE, LINK: tarfile.SYMTYPE, DIR: tarfile.DIRTYPE}
#: GNU tar pads an archive to whole records of 20 blocks (its default -b 20)
_TAR_RECORD = 20 * tarfile.BLOCKSIZE


def dev_entry_header(entry: DevEntry) -> bytes:
    """The header GNU tar writes for such an entry of ``.`` with --numeric-owner."""
    info = tarfile.TarInfo(f"./{entry.path}")
    info.type = _TAR_TYPES[entry.node.kind]
    info.mode, info.uid, info.gid, info.mtime = entry.node.mode, entry.uid, entry.gid, entry.mtime
    info.uname = info.gname = ""
    info.linkname = entry.node.target
    info.devmajor, info.devminor = entry.node.major, entry.node.minor
    header = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    if entry.node.kind != CHAR:
        # tarfile leaves a non-device's device numbers blank, GNU tar writes zeros.
        header[329:345] = b"0000000\0" * 2
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\0" % sum(header)
    return bytes(header)


def dev_entry_offsets(archive: Path, entries: Sequence[DevEntry]
                      ) -> tuple[list[tuple[int, DevEntry]], int]:
    """Where each entry goes in an archive GNU tar wrote with --sort=name
    (before the first member of its directory that sorts after it, else
    after the directory's last member), and where the members end."""
    pending = sorted(entries, key=lambda e: e.path)
    parents = {e.path.rpartition("/")[0] for e in pending}
    if len(parents) != 1:
        raise OutputError(f"cannot place /dev entries in more than one directory: {parents}")
    parent = parents.pop()
    placed: list[tuple[int, DevEntry]] = []
    state = "before"          # the parent directory: before, in or after it
    with tarfile.open(archive, "r:") as tar:
        for member in tar:
            name = member.name.removeprefix("./").rstrip("/")
            if name == parent:
                state = "in"
            elif state == "in" and name.startswith(parent + "/"):
                child = name[len(parent) + 1:].split("/")[0]
                while pending and pending[0].path.rpartition("/")[2] < child:
                    placed.append((member.offset, pending.pop(0)))
            elif state == "in":
                state = "after"
                placed += [(member.offset, e) for e in pending]
                pending = []
        end = tar.offset
    if state == "before":
        raise OutputError(f"the tar {archive} has no member ./{parent}/ to put its entries in")
    return placed + [(end, e) for e in pending], end


def insert_dev_entries(archive: Path, entries: Sequence[DevEntry]) -> None:
    """Write ``entries`` into the archive where GNU tar would have put them
    had the tree held them, and end it as GNU tar ends one: every other byte
    is what tar wrote."""
    if not entries:
        return
    offsets, end = dev_entry_offsets(archive, entries)
    spliced = archive.with_name(archive.name + ".dev")
    try:
        with open(archive, "rb") as src, open(spliced, "wb") as dst:
            position = 0
            for offset, entry in offsets:
                _copy_range(src, dst, position, offset - position)
                dst.write(dev_entry_header(entry))
                position = offset
            _copy_range(src, dst, position, end - position)
            # two zero blocks mark the end; zeros fill the last record
            written = dst.tell()
            dst.truncate(-(-(written + 2 * tarfile.BLOCKSIZE) // _TAR_RECORD) * _TAR_RECORD)
        os.replace(spliced, archive)
    finally:
        spliced.unlink(missing_ok=True)


def _copy_range(src: BinaryIO, dst: BinaryIO, start: int, length: int) -> None:
    """``length`` bytes of ``src`` from ``start`` onto the end of ``dst``, in
    the kernel where it can (the archive is hundreds of megabytes)."""
    dst.flush()
    done = 0
    try:
        while done < length:
            copied = os.copy_file_range(src.fileno(), dst.fileno(), length - done, start + done)
            if copied == 0:
                break
            done += copied
    except OSError:
        pass          # a filesystem that cannot: copy through Python
    src.seek(start + done)
    dst.seek(0, os.SEEK_END)
    remaining = length - done
    while remaining:
        block = src.read(min(remaining, 1 << 20))
        if not block:
            raise OutputError(f"{src.name} ended {remaining} bytes early while adding "
                              "the /dev entries")
        dst.write(block)
        remaining -= len(block)


class Tar(Output):
    name = "tar"
    needs_disk = False
    copies_tree_times = False
    extension = "tar"

    def tools(self):
        return [("tar", "tar")]

    def produce(self, ctx: OutputContext) -> list[Path]:
        self._need(ctx)
        dest = self.output_path(ctx)
        tar_of_tree(ctx, dest, "tar of the tree")
        return [dest]


class Tgz(Output):
    name = "tgz"
    needs_disk = False
    copies_tree_times = False
    extension = "tgz"

    def _gzip(self, ctx: OutputContext) -> str:
        return ctx.env.get("DIB_GZIP_BIN") or "gzip"

    def tools(self):
        return [("tar", "tar"), ("gzip", "gzip")]

    def produce(self, ctx: OutputContext) -> list[Path]:
        self._need(ctx)
        dest = self.output_path(ctx)
        tmp = dest.with_name(dest.name + ".tmp.tar")
        try:
            tar_of_tree(ctx, tmp, "tar of the tree")
            runner.run([self._gzip(ctx), "-9", "-n", "-f", str(tmp)], what="gzip of the tar")
            os.replace(f"{tmp}.gz", dest)
        finally:
            for leftover in (tmp, Path(f"{tmp}.gz")):
                if leftover.exists():
                    leftover.unlink()
        return [dest]


class Squashfs(Output):
    name = "squashfs"
    needs_disk = False
    extension = "squash"

    def tools(self):
        return [("mksquashfs", "squashfs-tools")]

    def argv(self, ctx: OutputContext) -> list[str]:
        pseudo = [arg for entry in ctx.dev_nodes for arg in ("-p", squashfs_pseudo(entry))]
        # -e takes every argument after it
        return ["mksquashfs", str(ctx.tree), str(self.output_path(ctx)), "-comp", "xz",
                "-noappend", "-no-progress", *pseudo, "-wildcards", "-e", "proc/*", "sys/*"]

    def produce(self, ctx: OutputContext) -> list[Path]:
        self._need(ctx)
        env = dict(os.environ)
        if ctx.source_date_epoch is not None:
            env["SOURCE_DATE_EPOCH"] = str(ctx.source_date_epoch)
        runner.run(self.argv(ctx), env=env, what="mksquashfs of the tree")
        return [self.output_path(ctx)]


#: mksquashfs's pseudo file types that take a time (C: char device, S: symlink)
_PSEUDO_TYPES = {CHAR: "C", LINK: "S", DIR: "D"}


def squashfs_pseudo(entry: DevEntry) -> str:
    """A mksquashfs pseudo file definition of one entry, with its time."""
    node = entry.node
    head = (f"{entry.path} {_PSEUDO_TYPES[node.kind]} {entry.mtime} {node.mode:o} "
            f"{entry.uid} {entry.gid}")
    if node.kind == CHAR:
        return f"{head} {node.major} {node.minor}"
    if node.kind == LINK:
        return f"{head} {node.target}"
    return head


_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^(?:[A-Za-z0-9.-]+(?::\d+)?/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def parse_docker_target(target: str) -> tuple[str, str]:
    """``repo[:tag]`` → (repo, tag); tag defaults to latest."""
    text = (target or "").strip()
    repo, tag = text, "latest"
    head, sep, tail = text.rpartition(":")
    if sep and "/" not in tail:
        repo, tag = head, tail
    if not _REPO_RE.match(repo) or not _TAG_RE.match(tag):
        raise ConfigError(f"docker target {target!r} is not a valid repo:tag",
                          hint="use lower-case names such as myorg/myimage:1.0")
    return repo, tag


class Docker(Output):
    name = "docker"
    needs_disk = False
    copies_tree_times = False
    extension = "docker.tar"

    def tools(self):
        return [("tar", "tar")]

    def produce(self, ctx: OutputContext) -> list[Path]:
        self._need(ctx)
        if not ctx.docker_target:
            raise OutputError("output type docker needs a target name",
                              hint="set --docker-target / DOCKER_TARGET to repo:tag")
        repo, tag = parse_docker_target(ctx.docker_target)
        dest = self.output_path(ctx)
        with tempfile.TemporaryDirectory(prefix="dib-docker-", dir=dest.parent) as tmp:
            layer = Path(tmp) / "layer.tar"
            tar_of_tree(ctx, layer, "tar of the tree (docker layer)")
            write_docker_archive(dest, layer, repo, tag, arch=ctx.arch,
                                 created=ctx.source_date_epoch)
        return [dest]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_docker_archive(dest: Path, layer: Path, repo: str, tag: str, *, arch: str = "amd64",
                         created: int | None = None) -> Path:
    """Write the archive ``docker load`` reads: manifest.json, config, one layer."""
    diff_id = _sha256_file(layer)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created if created is not None
                                                             else time.time()))
    config = {
        "architecture": arch, "os": "linux", "created": when,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": when, "created_by": "dib"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_id = hashlib.sha256(config_bytes).hexdigest()
    layer_name = f"{diff_id}/layer.tar"
    manifest = [{"Config": f"{config_id}.json", "RepoTags": [f"{repo}:{tag}"],
                 "Layers": [layer_name]}]
    layer_json = {"id": diff_id, "created": when, "os": "linux"}
    mtime = created if created is not None else int(time.time())

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), mtime, 0o644
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(diff_id)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
        tar.addfile(info)
        add_bytes(tar, f"{diff_id}/VERSION", b"1.0")
        add_bytes(tar, f"{diff_id}/json", json.dumps(layer_json, sort_keys=True).encode())
        info = tarfile.TarInfo(layer_name)
        info.size, info.mtime, info.mode = layer.stat().st_size, mtime, 0o644
        with open(layer, "rb") as fh:
            tar.addfile(info, fh)
        add_bytes(tar, f"{config_id}.json", config_bytes)
        add_bytes(tar, "manifest.json", json.dumps(manifest, sort_keys=True).encode())
        add_bytes(tar, "repositories",
                  json.dumps({repo: {tag: diff_id}}, sort_keys=True).encode())
    return dest
