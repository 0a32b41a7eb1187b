"""The output plugin interface (``Output``, ``OutputContext``) and checksums.

The plugins themselves (dib.outputs.images, dib.outputs.archives) build on
this module; dib.outputs.plugins finds them."""
from __future__ import annotations

import concurrent.futures
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from dib.errors import ConfigError, OutputError
from dib.runtime.devnodes import DevEntry


@dataclass
class OutputContext:
    """Everything an output plugin may use."""

    image_name: Path                      # output base path (DIB's IMAGE_NAME), no extension
    tree: Path | None = None              # the finished target tree
    raw: Path | None = None               # the raw disk image, for disk outputs
    compress: bool = True
    qemu_img_options: str | None = None   # DIB's --qemu-img-options: "key=val,key=val"
    docker_target: str | None = None      # repo[:tag] for the docker output
    move_raw: bool = False                # raw output may rename the raw file (done last)
    source_date_epoch: int | None = None
    arch: str = "amd64"
    env: dict[str, str] = field(default_factory=dict)
    dev_nodes: tuple[DevEntry, ...] = ()  # /dev entries the tree lacks (dib.runtime.devnodes)

    @classmethod
    def from_env(cls, image_name: Path, env: Mapping[str, str], **kwargs) -> "OutputContext":
        """A context for the hooks' environment (the caller's, with every
        element's environment.d sourced): an element may set DIB_GZIP_BIN or
        SOURCE_DATE_EPOCH there."""
        epoch = env.get("SOURCE_DATE_EPOCH")
        if epoch and epoch.isdigit() and "source_date_epoch" not in kwargs:
            kwargs["source_date_epoch"] = int(epoch)
        return cls(image_name=Path(image_name), env=dict(env), **kwargs)

    def path_for(self, extension: str) -> Path:
        return Path(f"{self.image_name}.{extension}")


class Output:
    """Base class of output plugins."""

    name: str = ""
    needs_disk: bool = False
    extension: str = ""
    #: the output copies the tree's mtimes as they are: with SOURCE_DATE_EPOCH
    #: it is made from a tree with every later mtime clamped first. Outputs
    #: that clamp times themselves (tar) or are made from the disk (whose
    #: filesystems get their times when made) set it False.
    copies_tree_times: bool = True

    def tools(self) -> list[tuple[str, str]]:
        return []

    def produce(self, ctx: OutputContext) -> list[Path]:
        raise NotImplementedError

    def output_path(self, ctx: OutputContext) -> Path:
        return ctx.path_for(self.extension)

    def _need(self, ctx: OutputContext) -> None:
        if self.needs_disk and ctx.raw is None:
            raise OutputError(f"output type {self.name} needs a disk image, and none was built")
        if not self.needs_disk and ctx.tree is None:
            raise OutputError(f"output type {self.name} needs the image tree")

    def __repr__(self) -> str:
        return f"<output {self.name}>"


def file_digest(path: Path, kind: str = "sha256") -> str:
    """The hex digest of one file's bytes."""
    h = hashlib.new(kind)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digests(jobs: Iterable[tuple[Path, str]]) -> dict[tuple[Path, str], str]:
    """(file, kind) → hex digest for each job, files read in parallel
    (hashlib lets go of the interpreter lock while it hashes)."""
    jobs = [(Path(p), kind) for p, kind in jobs]
    for _, kind in jobs:
        if kind not in hashlib.algorithms_available:
            raise ConfigError(f"unknown checksum kind {kind!r}", hint="use md5 or sha256")
    if not jobs:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        futures = {job: pool.submit(file_digest, *job) for job in jobs}
        return {job: future.result() for job, future in futures.items()}


def checksums(paths: Iterable[Path], kinds: Iterable[str] = ("md5", "sha256")) -> list[Path]:
    """Write FILE.md5 / FILE.sha256 beside each file (``md5sum -c`` format), in parallel."""
    kinds = list(kinds)
    found = file_digests((p, kind) for p in paths for kind in kinds)
    written: list[Path] = []
    for (path, kind), digest in found.items():
        out = Path(f"{path}.{kind}")
        out.write_text(f"{digest}  {path.name}\n")
        written.append(out)
    return written
