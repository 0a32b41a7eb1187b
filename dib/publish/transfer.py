"""``dib push`` and ``dib pull``: a disk image to and from a registry.

Blobs stream between files and the network in chunks (images are GBs).
What ``pull`` writes goes to a temporary file beside the target and is
renamed into place only once every byte has matched its digest, so a
damaged blob leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

from dib.cache import oci
from dib.errors import ConfigError, DibError
from dib.publish import image as images
from dib.publish import layout

LOG = logging.getLogger("dib.publish")

REFERENCE_HINT = "write it as oci://HOST[:PORT]/REPO:TAG, e.g. oci://127.0.0.1:5000/images/vm:1"
SIDECAR_TYPES = (layout.SPDX_TYPE, layout.PROVENANCE_TYPE)


class PullFailed(DibError):
    """The registry has no such image, or sent a damaged one (exit status 1)."""


@dataclass(frozen=True)
class Pushed:
    reference: str
    layout: str
    manifest_digest: str
    sha256: str              # of the image file
    uploaded: int            # bytes sent (blobs the registry had are skipped)


@dataclass(frozen=True)
class Pulled:
    path: Path
    layout: str
    sha256: str
    sidecars: tuple[Path, ...]


# -- shared ----------------------------------------------------------------------

def parse_reference(reference: str) -> tuple[oci.RemoteRef, str]:
    try:
        return oci.parse_image_ref(reference)
    except ValueError as exc:
        raise ConfigError(f"REFERENCE {reference!r}: {exc}", hint=REFERENCE_HINT) from None


def open_registry(ref: oci.RemoteRef, *, insecure: bool,
                  environ: Mapping[str, str]) -> oci.Registry:
    """A client of ``ref`` that has answered once."""
    registry = oci.connect(ref, insecure=insecure, environ=environ)
    try:
        registry.ping()
    except oci.RegistryError as exc:
        raise DibError(f"REFERENCE {ref}: {exc}",
                       hint="start the registry or fix HOST[:PORT] in the reference; a "
                            "registry on another host without TLS needs --insecure") from None
    return registry


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


# -- push ------------------------------------------------------------------------

def _upload(registry: oci.Registry, digest: str, size: int, data: bytes | IO[bytes],
            what: str) -> int:
    """Send one blob unless the registry has it; the bytes sent."""
    if registry.has_blob(digest):
        LOG.info("%s: the registry has it already", what)
        return 0
    LOG.info("pushing %s (%s)", what, _mib(size))
    registry.put_blob(digest, size, data)
    return size


def _upload_file(registry: oci.Registry, path: Path, what: str) -> tuple[str, int, int]:
    digest, size = oci.file_digest(path)
    with open(path, "rb") as handle:
        return digest, size, _upload(registry, digest, size, handle, what)


def manifests_tar(directory: Path) -> bytes:
    """The manifests directory as a tar (a few hundred KiB), without the
    builder's user and group: they mean nothing where it is pulled."""
    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(directory.rglob("*")):
            archive.add(path, arcname=path.relative_to(directory).as_posix(),
                        recursive=False, filter=plain)
    return buffer.getvalue()


def _push_sidecars(registry: oci.Registry,
                   image: layout.DiskImage) -> tuple[list[dict[str, Any]], int]:
    descriptors: list[dict[str, Any]] = []
    sent = 0
    for sidecar in image.sidecars:
        if sidecar.media_type == layout.MANIFESTS_TYPE:
            blob = manifests_tar(sidecar.path)
            digest, size = oci.sha256_digest(blob), len(blob)
            sent += _upload(registry, digest, size, blob, sidecar.title)
        else:
            digest, size, count = _upload_file(registry, sidecar.path, sidecar.title)
            sent += count
        descriptors.append(oci.descriptor(sidecar.media_type, digest, size,
                                          {layout.TITLE: sidecar.title}))
    return descriptors, sent


def _push_artifact(registry: oci.Registry, image: layout.DiskImage) -> tuple[bytes, int]:
    with open(image.path, "rb") as handle:
        sent = _upload(registry, f"sha256:{image.sha256}", image.size, handle, image.path.name)
    sidecars, more = _push_sidecars(registry, image)
    config = layout.artifact_config(image)
    sent += _upload(registry, oci.sha256_digest(config), len(config), config, "config")
    return layout.artifact_manifest(image, config, sidecars), sent + more


def _push_container_disk(registry: oci.Registry, image: layout.DiskImage,
                         mtime: int) -> tuple[bytes, int]:
    stream = layout.DiskTar(image, mtime)
    try:
        LOG.info("reading %s again for the containerDisk layer's digest", image.path)
        digest = layout.stream_digest(stream)
        sent = _upload(registry, digest, stream.size, stream,
                       f"{image.disk_member()} (containerDisk layer)")
    finally:
        stream.close()
    config = layout.container_disk_config(image, digest)
    sent += _upload(registry, oci.sha256_digest(config), len(config), config, "config")
    return layout.container_disk_manifest(image, config, digest, stream.size), sent


def push(path: Path, reference: str, *, container_disk: bool = False, insecure: bool = False,
         environ: Mapping[str, str] = os.environ) -> Pushed:
    """Publish the image at ``path`` as ``reference`` (oci://HOST/REPO:TAG)."""
    ref, tag = parse_reference(reference)
    # The cheap checks first: reading a big image for its digest takes a while.
    images.check_image(path)
    registry = open_registry(ref, insecure=insecure, environ=environ)
    image = images.disk_image(path)
    try:
        if container_disk:
            manifest, sent = _push_container_disk(registry, image, int(path.stat().st_mtime))
        else:
            manifest, sent = _push_artifact(registry, image)
        registry.put_manifest(tag, manifest)
    except oci.RegistryError as exc:
        raise DibError(f"pushing {path} to {reference}: {exc}") from None
    return Pushed(reference, "containerdisk" if container_disk else "artifact",
                  oci.sha256_digest(manifest), image.sha256, sent)


# -- pull ------------------------------------------------------------------------

@contextmanager
def replacing(target: Path) -> Iterator[IO[bytes]]:
    """A file that becomes ``target`` when the block ends without an error,
    and is gone when it does not."""
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".part", delete=False)
    try:
        with handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)
        os.replace(handle.name, target)
    except BaseException:
        os.unlink(handle.name)
        raise


def _check_output(output: Path | None) -> None:
    if output is not None and not output.is_dir() and not output.parent.is_dir():
        raise ConfigError(f"-o {output}: the directory {output.parent} does not exist",
                          hint="create it first, or give another -o FILE")


def _target(output: Path | None, name: str | None, fallback: str) -> Path:
    """Where the image goes: -o FILE, or the pushed name in -o DIR or here."""
    if output is not None and not output.is_dir():
        return output
    return (output or Path.cwd()) / (name or fallback)


def _sidecar_path(target: Path, title: str, image_name: str) -> Path:
    """``vm.spdx.json`` of an image pushed as ``vm.qcow2`` and pulled as
    ``out.qcow2`` becomes ``out.spdx.json``."""
    pushed_stem = image_name.rsplit(".", 1)[0] if image_name else ""
    rest = title[len(pushed_stem):] if pushed_stem and title.startswith(pushed_stem + ".") \
        else "." + title
    return target.with_name(target.with_suffix("").name + rest)


def _pull_sidecars(registry: oci.Registry, published: layout.Published,
                   target: Path) -> list[Path]:
    written = []
    image_name = published.file_name() or ""
    for descriptor in published.sidecars:
        title = descriptor.get("annotations", {}).get(layout.TITLE)
        if not isinstance(title, str) or "/" in title or title in ("", ".", ".."):
            continue
        path = _sidecar_path(target, title, image_name)
        if descriptor["mediaType"] in SIDECAR_TYPES:
            with replacing(path) as out:
                registry.get_blob(descriptor["digest"], descriptor["size"], out)
        elif descriptor["mediaType"] == layout.MANIFESTS_TYPE:
            path = path.with_suffix("")      # NAME.d.tar → NAME.d/
            blob = registry.get_small_blob(descriptor["digest"], descriptor["size"])
            path.mkdir(exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
                archive.extractall(path, filter="data")
        else:
            continue
        written.append(path)
    return written


def _pull_artifact(registry: oci.Registry, published: layout.Published, target: Path) -> str:
    disk = published.disk
    stated = published.annotations.get(layout.SHA256)
    if stated and f"sha256:{stated}" != disk["digest"]:
        raise PullFailed(f"the manifest says the image's SHA-256 is {stated} but its layer "
                         f"is {disk['digest']}")
    LOG.info("pulling %s (%s)", target.name, _mib(disk["size"]))
    with replacing(target) as out:
        registry.get_blob(disk["digest"], disk["size"], out)
    return disk["digest"].split(":", 1)[1]


def _copy_member(archive: tarfile.TarFile, member: tarfile.TarInfo, out: IO[bytes]) -> str:
    source = archive.extractfile(member)
    assert source is not None   # a regular file always has data
    hasher = hashlib.sha256()
    for chunk in iter(lambda: source.read(oci.CHUNK), b""):
        hasher.update(chunk)
        out.write(chunk)
    return hasher.hexdigest()


def _pull_container_disk(registry: oci.Registry, published: layout.Published,
                         output: Path | None, fallback: str) -> tuple[Path, str]:
    layer = published.disk
    where = _target(output, None, fallback).parent
    LOG.info("pulling the containerDisk layer (%s)", _mib(layer["size"]))
    # The layer is checked whole against its digest before a byte of the
    # image is taken from it.
    with tempfile.TemporaryFile(dir=where) as blob:
        registry.get_blob(layer["digest"], layer["size"], blob)
        blob.seek(0)
        with tarfile.open(fileobj=blob, mode="r:*") as archive:
            member = layout.disk_member(archive)
            if member is None:
                raise PullFailed("the containerDisk layer has no file in disk/")
            target = _target(output, Path(member.name).name, fallback)
            with replacing(target) as out:
                sha256 = _copy_member(archive, member, out)
                stated = published.annotations.get(layout.SHA256)
                if stated and stated != sha256:
                    raise PullFailed(f"disk/{target.name} has SHA-256 {sha256}, not "
                                     f"{stated} as the manifest says")
    return target, sha256


def pull(reference: str, output: Path | None = None, *, insecure: bool = False,
         environ: Mapping[str, str] = os.environ) -> Pulled:
    """Fetch ``reference`` and write its image to ``output`` (default: the
    name it was pushed under, here)."""
    ref, tag = parse_reference(reference)
    _check_output(output)
    registry = open_registry(ref, insecure=insecure, environ=environ)
    fallback = f"{ref.repository.rsplit('/', 1)[-1]}-{tag}.img"
    try:
        body = registry.get_manifest(tag, accept=(oci.MANIFEST_TYPE, oci.DOCKER_MANIFEST_TYPE))
        if body is None:
            raise PullFailed(f"{reference}: there is no tag {tag!r} in {ref}",
                             hint="check the tag (dib push REFERENCE writes it), or push "
                                  "the image first")
        try:
            published = layout.read_manifest(body)
        except layout.NotADiskImage as exc:
            raise PullFailed(f"{reference} is not a disk image: {exc}") from None
        registry.get_small_blob(published.config["digest"], published.config["size"])
        if published.layout == "artifact":
            target = _target(output, published.file_name(), fallback)
            sha256 = _pull_artifact(registry, published, target)
            sidecars = _pull_sidecars(registry, published, target)
        else:
            target, sha256 = _pull_container_disk(registry, published, output, fallback)
            sidecars = []
    except oci.DigestMismatch as exc:
        raise PullFailed(f"{reference}: {exc}; nothing was written",
                         hint="the registry's copy is damaged: push the image again") from None
    except oci.WriteFailed as exc:
        raise DibError(f"pulling {reference}: {exc}",
                       hint="give -o a writable place with room for the image") from None
    except oci.RegistryError as exc:
        raise PullFailed(f"{reference}: {exc}") from None
    except tarfile.TarError as exc:
        raise PullFailed(f"{reference}: the containerDisk layer is not a tar: {exc}") from None
    except OSError as exc:
        # Only writing here can fail this way: the registry's errors are RegistryErrors.
        raise DibError(f"pulling {reference}: cannot write {exc.filename or 'the image'}: "
                       f"{exc.strerror or exc}",
                       hint="give -o a writable place with room for the image") from None
    return Pulled(target, published.layout, sha256, tuple(sidecars))


def describe(pushed: Pushed | Pulled) -> str:
    """The one line each command prints when it is done."""
    if isinstance(pushed, Pushed):
        return (f"pushed {pushed.reference} ({pushed.layout}, image sha256:{pushed.sha256}, "
                f"manifest {pushed.manifest_digest}, {_mib(pushed.uploaded)} sent)")
    extra = "".join(f", {p.name}" for p in pushed.sidecars)
    return f"pulled {pushed.path} ({pushed.layout}, sha256:{pushed.sha256}{extra})"
