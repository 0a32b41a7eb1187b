"""The two shapes a disk image takes in a registry, and reading them back.

``artifact``: an OCI artifact (``artifactType`` ARTIFACT_TYPE) whose first
layer is the image file itself, so the layer's digest is the image's SHA-256;
the build's SBOM, provenance and manifests directory follow as layers of
their own, each titled with its file name.

``containerdisk``: a regular OCI image, as KubeVirt's containerDisk volumes
want it: one uncompressed tar layer holding ``disk/NAME.qcow2`` (or
``.raw``), owned by uid and gid 107 (qemu in KubeVirt's launcher), mode 0440.
The tar is produced on the fly (``DiskTar``), never written to disk.

Both carry the same short facts as manifest annotations. Nothing here opens
a connection; ``transfer`` does that.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping

from dib.cache import oci
from dib.errors import DibError

ARTIFACT_TYPE = "application/vnd.dib.disk-image.v1"
CONFIG_TYPE = "application/vnd.dib.disk-image.config.v1+json"
DISK_TYPES = {"qcow2": "application/vnd.dib.disk-image.layer.v1.qcow2",
              "raw": "application/vnd.dib.disk-image.layer.v1.raw"}
SPDX_TYPE = "application/spdx+json"
PROVENANCE_TYPE = "application/vnd.in-toto+json"
MANIFESTS_TYPE = "application/vnd.dib.manifests.v1.tar"
OCI_CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
TAR_LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
# The layer types a containerDisk made elsewhere (docker, buildah) may use.
TAR_LAYER_TYPES = (TAR_LAYER_TYPE, TAR_LAYER_TYPE + "+gzip",
                   "application/vnd.docker.image.rootfs.diff.tar",
                   "application/vnd.docker.image.rootfs.diff.tar.gzip")

TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"
SHA256 = "dib.image.sha256"
FORMAT = "dib.image.format"
SIZE = "dib.image.size"
LAYOUT = "dib.image.layout"
ELEMENTS = "dib.elements"
VERSION = "dib.version"
BUILD = "dib.build"

# KubeVirt's launcher runs qemu as uid/gid 107 and reads the disk only.
KUBEVIRT_ID = 107
DISK_MODE = 0o440
DISK_DIR_MODE = 0o555
BLOCK = 512
RECORD = 20 * BLOCK      # tar pads its end to whole records
# OCI's names for the Debian architectures dib builds for.
OCI_ARCH = {"ppc64el": "ppc64le", "armhf": "arm", "i386": "386"}


class NotADiskImage(DibError):
    """The manifest is neither layout (exit status 1)."""


@dataclass(frozen=True)
class Sidecar:
    """A file the build wrote beside the image, travelling as a layer."""

    media_type: str
    title: str         # its name beside the image, e.g. vm.spdx.json
    path: Path


@dataclass(frozen=True)
class DiskImage:
    """A finished image about to be pushed."""

    path: Path
    format: str        # qcow2 or raw
    sha256: str        # hex
    size: int
    created: str       # RFC 3339, UTC
    arch: str          # Debian's name
    facts: Mapping[str, str] = field(default_factory=dict)
    sidecars: tuple[Sidecar, ...] = ()

    def annotations(self, layout: str) -> dict[str, str]:
        return {TITLE: self.path.name, CREATED: self.created, SHA256: self.sha256,
                FORMAT: self.format, SIZE: str(self.size), LAYOUT: layout, **self.facts}

    def disk_member(self) -> str:
        return f"disk/{self.path.name}"


# -- artifact --------------------------------------------------------------------

def artifact_config(image: DiskImage) -> bytes:
    record = {"name": image.path.name, "format": image.format, "sha256": image.sha256,
              "size": image.size, "created": image.created}
    return json.dumps(record, sort_keys=True).encode()


def artifact_manifest(image: DiskImage, config: bytes,
                      sidecars: list[dict[str, Any]]) -> bytes:
    """The manifest of the artifact layout; ``sidecars`` are the descriptors
    of the other layers, in order."""
    disk = oci.descriptor(DISK_TYPES[image.format], f"sha256:{image.sha256}", image.size,
                          {TITLE: image.path.name})
    return oci.image_manifest(
        oci.descriptor(CONFIG_TYPE, oci.sha256_digest(config), len(config)),
        [disk, *sidecars], image.annotations("artifact"), artifact_type=ARTIFACT_TYPE)


# -- containerDisk ------------------------------------------------------------------

def _header(name: str, kind: bytes, size: int, mode: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.uid = info.gid = KUBEVIRT_ID
    info.mtime = mtime
    # GNU format: a size past 8 GiB is written in base-256, which Go's
    # archive/tar (containerd) and Python read.
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


class DiskTar:
    """The containerDisk layer as a readable stream: two tar headers, the
    image's bytes read from its file, padding, the end blocks. Its size is
    known before a byte is read, so it can be hashed in one pass and
    uploaded in another without a copy on disk."""

    def __init__(self, image: DiskImage, mtime: int) -> None:
        self.image = image
        head = (_header("disk/", tarfile.DIRTYPE, 0, DISK_DIR_MODE, mtime)
                + _header(image.disk_member(), tarfile.REGTYPE, image.size, DISK_MODE, mtime))
        body_end = len(head) + image.size + (-image.size % BLOCK) + 2 * BLOCK
        tail = b"\0" * ((-image.size % BLOCK) + 2 * BLOCK + (-body_end % RECORD))
        self.parts: list[bytes | Path] = [head, image.path, tail]
        self.size = len(head) + image.size + len(tail)
        self._index = 0
        self._current: IO[bytes] | None = None

    def read(self, n: int = -1) -> bytes:
        chunks = []
        while self._index < len(self.parts) and n != 0:
            if self._current is None:
                part = self.parts[self._index]
                self._current = open(part, "rb") if isinstance(part, Path) else io.BytesIO(part)
            chunk = self._current.read(n if n > 0 else -1)
            if chunk:
                chunks.append(chunk)
                n -= len(chunk) if n > 0 else 0
                continue
            self._current.close()
            self._current = None
            self._index += 1
        return b"".join(chunks)

    def seek(self, offset: int, whence: int = 0) -> int:
        # Only a rewind is needed (a request retried after a 401).
        if (offset, whence) != (0, 0):
            raise io.UnsupportedOperation("DiskTar only rewinds")
        self.close()
        self._index = 0
        return 0

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


def stream_digest(stream: DiskTar) -> str:
    hasher = hashlib.sha256()
    for chunk in iter(lambda: stream.read(oci.CHUNK), b""):
        hasher.update(chunk)
    stream.seek(0)
    return "sha256:" + hasher.hexdigest()


def container_disk_config(image: DiskImage, layer_digest: str) -> bytes:
    config = {"architecture": OCI_ARCH.get(image.arch, image.arch), "os": "linux",
              "created": image.created,
              "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
              "config": {}}
    return json.dumps(config, sort_keys=True).encode()


def container_disk_manifest(image: DiskImage, config: bytes, layer_digest: str,
                            layer_size: int) -> bytes:
    return oci.image_manifest(
        oci.descriptor(OCI_CONFIG_TYPE, oci.sha256_digest(config), len(config)),
        [oci.descriptor(TAR_LAYER_TYPE, layer_digest, layer_size)],
        image.annotations("containerdisk"))


# -- reading a manifest back ------------------------------------------------------------

@dataclass(frozen=True)
class Published:
    """What a manifest says is where."""

    layout: str                    # artifact or containerdisk
    config: dict[str, Any]
    disk: dict[str, Any]           # the image layer (artifact) or the tar layer
    sidecars: tuple[dict[str, Any], ...]
    annotations: Mapping[str, str]

    def file_name(self) -> str | None:
        """The image's file name as pushed, if the manifest says."""
        name = self.disk.get("annotations", {}).get(TITLE) or self.annotations.get(TITLE)
        return name if isinstance(name, str) and _plain_name(name) else None


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..")


def _descriptor(value: Any) -> dict[str, Any]:
    if not oci.is_descriptor(value):
        raise NotADiskImage("the manifest has a malformed or non-sha256 descriptor")
    return value


def read_manifest(body: bytes) -> Published:
    """Which layout ``body`` is, and its parts; NotADiskImage for anything else."""
    try:
        manifest = oci.load_manifest(body)
    except ValueError as exc:
        raise NotADiskImage(str(exc)) from None
    if not isinstance(manifest.get("layers"), list) or not manifest["layers"]:
        raise NotADiskImage("the manifest has no layers")
    config = _descriptor(manifest.get("config"))
    layers = [_descriptor(layer) for layer in manifest["layers"]]
    annotations = manifest.get("annotations")
    annotations = {k: v for k, v in annotations.items() if isinstance(v, str)} \
        if isinstance(annotations, dict) else {}
    if config["mediaType"] == CONFIG_TYPE:
        if layers[0]["mediaType"] not in DISK_TYPES.values():
            raise NotADiskImage("the artifact's first layer is not a disk image")
        return Published("artifact", config, layers[0], tuple(layers[1:]), annotations)
    if len(layers) == 1 and layers[0]["mediaType"] in TAR_LAYER_TYPES:
        return Published("containerdisk", config, layers[0], (), annotations)
    raise NotADiskImage("it is neither a dib disk image artifact nor a containerDisk "
                        "(one tar layer)")


def disk_member(archive: tarfile.TarFile) -> tarfile.TarInfo | None:
    """The disk image in a containerDisk layer: the regular file directly in
    ``disk/`` (KubeVirt takes the first one it finds)."""
    for member in archive:
        name = member.name.lstrip("/")
        name = name[2:] if name.startswith("./") else name
        folder, _, base = name.partition("/")
        if member.isreg() and folder == "disk" and _plain_name(base):
            return member
    return None
