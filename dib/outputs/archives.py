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

from dib import runner
from dib.errors import ConfigError, OutputError
from dib.outputs.base import Output, OutputContext

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


class Tar(Output):
    name = "tar"
    needs_disk = False
    extension = "tar"

    def tools(self):
        return [("tar", "tar")]

    def produce(self, ctx: OutputContext) -> list[Path]:
        self._need(ctx)
        dest = self.output_path(ctx)
        runner.run(tar_argv(ctx.tree, dest, ctx.source_date_epoch), what="tar of the tree")
        return [dest]


class Tgz(Output):
    name = "tgz"
    needs_disk = False
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
            runner.run(tar_argv(ctx.tree, tmp, ctx.source_date_epoch), what="tar of the tree")
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
        return ["mksquashfs", str(ctx.tree), str(self.output_path(ctx)), "-comp", "xz",
                "-noappend", "-no-progress", "-wildcards", "-e", "proc/*", "sys/*"]

    def produce(self, ctx: OutputContext) -> list[Path]:
        self._need(ctx)
        env = dict(os.environ)
        if ctx.source_date_epoch is not None:
            env["SOURCE_DATE_EPOCH"] = str(ctx.source_date_epoch)
        runner.run(self.argv(ctx), env=env, what="mksquashfs of the tree")
        return [self.output_path(ctx)]


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
            runner.run(tar_argv(ctx.tree, layer, ctx.source_date_epoch),
                       what="tar of the tree (docker layer)")
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
