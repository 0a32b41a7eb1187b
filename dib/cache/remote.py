"""The phase cache shared through an OCI registry.

Each entry is one image manifest in the repository, tagged with its key
(``oci.tag_for``): its config blob is the entry's record (the same fields as
``meta.json``), its layers a compressed tar of the entry's ``layer/`` and,
for a host-side step that kept any, one of its extras (``hooks-delta/``,
``products/``).

A local miss fetches the record and the extras at once; the layer waits
until something needs the tree (``lookup``, then ``fetch_layer``). What
comes back is checked against its digest, unpacked into the store's staging
area and published like an entry made here. The finished images travel too
(``pull_outputs``, ``push_outputs``), one blob a file. Entries this build
made are pushed once the build's outputs are done. A registry that fails is
worth one warning: the rest of the build goes on without it, locally.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dib import runner
from dib.cache import oci
from dib.cache.store import CacheStore, Entry
from dib.errors import CommandError, DibError

LOG = logging.getLogger("dib.cache")

CONFIG_TYPE = "application/vnd.dib.cache.entry.v1+json"
ARTIFACT_TYPE = "application/vnd.dib.cache.phase.v1"
LAYER_TYPES = {"zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               "gzip": "application/vnd.oci.image.layer.v1.tar+gzip"}
# What of an entry's record travels; the rest (digest, size, times) the
# receiving store works out for itself.
META_FIELDS = ("parent", "step", "inputs", "build", "output")
# The parts of an entry directory that travel with it.
PARTS = ("layer", "hooks-delta", "products")
MODES = ("read", "write", "readwrite")
OUTPUTS_CONFIG_TYPE = "application/vnd.dib.cache.outputs.v1+json"
OUTPUT_TYPES = {None: "application/vnd.dib.cache.output.v1",
                "zstd": "application/vnd.dib.cache.output.v1+zstd"}
OUTPUT_COMPRESSORS = {media_type: name for name, media_type in OUTPUT_TYPES.items()}
# Which of an entry's tars a layer descriptor is: "layer" (fetched only when
# the tree is needed) or "extras" (fetched with the record).
PART_ANNOTATION = "dib.cache.part"
TAR_OPTIONS = ["--xattrs", "--xattrs-include=*", "--numeric-owner", "--sparse"]


@dataclass
class Transfer:
    bytes: int
    seconds: float
    #: whether the step's layer itself came; False while only its record
    #: (and the files it keeps beside the tree) did
    layer: bool = True


@dataclass
class Deferred:
    """An entry whose record and extras (hooks-tree changes, products) came
    from the registry; its layer, the big part, is fetched only when
    something needs the tree (``RemoteCache.fetch_layer``)."""
    key: str
    meta: dict[str, Any]
    layer: dict[str, Any]
    #: holds ``entry/``, the extras unpacked, where the layer joins them
    staging: Path
    transfer: Transfer
    #: an entry of the older one-blob format: its extras are in the layer's
    #: tar, so it cannot be used before that is fetched
    eager: bool = False

    @property
    def unpacked(self) -> Path:
        return self.staging / "entry"


class LayerUnavailable(Exception):
    """A deferred layer could not be fetched (damaged, or the registry
    failed); the warning has been given. ``keys`` are the entries concerned."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"the layers of {len(keys)} steps could not be pulled")
        self.keys = keys


class RemoteCache:
    """One build's view of the shared cache."""

    def __init__(self, registry: oci.Registry, mode: str = "readwrite",
                 compressor: str | None = None) -> None:
        self.registry = registry
        self.mode = mode
        self.compressor = compressor or default_compressor()
        self.failed = False
        # keys whose entry in the registry turned out damaged
        self.damaged: set[str] = set()

    @property
    def reads(self) -> bool:
        return self.mode in ("read", "readwrite") and not self.failed

    @property
    def writes(self) -> bool:
        return self.mode in ("write", "readwrite") and not self.failed

    def _give_up(self, error: Exception, doing: str) -> None:
        """The one warning of a build whose registry fails; after it the
        registry is left alone, so a dead one costs one timeout, not one a step."""
        if self.failed:
            return
        LOG.warning("remote cache %s: %s while %s; building locally without it",
                    self.registry.ref, error, doing)
        self.failed = True

    def _damaged(self, key: str, error: Exception) -> None:
        # One damaged blob says nothing about the others: keep using the
        # registry, and replace this entry when the build pushes.
        LOG.warning("remote cache: %s; discarding it and making this step here", error)
        self.damaged.add(key)

    def check(self) -> None:
        """For --cache-remote-required: a DibError now, before any slow work,
        unless the registry answers."""
        try:
            self.registry.ping()
        except oci.RegistryError as exc:
            raise DibError(f"the remote cache {self.registry.ref} does not answer: {exc}",
                           hint="start the registry or fix --cache-remote, or build "
                                "without --cache-remote-required") from None

    # -- pulling ------------------------------------------------------------------

    def lookup(self, key: str, store: CacheStore) -> Deferred | None:
        """The record and extras of the entry for ``key``, its layer left in
        the registry; None when the registry has none (or it could not be used)."""
        if not self.reads or key in self.damaged:
            return None
        started = time.monotonic()
        try:
            found = self._fetch_manifest(key)
            if found is None:
                return None
            meta, config, layer, extras = found
            staging = _staging(store, f"pull-{key}")
            try:
                (staging / "entry").mkdir()
                fetched = int(config["size"])
                if extras is not None:
                    self._fetch_tar(extras, staging, "extras")
                    fetched += int(extras["size"])
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        except oci.DigestMismatch as exc:
            self._damaged(key, exc)
            return None
        except (oci.RegistryError, OSError, http.client.HTTPException) as exc:
            # Whatever went wrong, the step can still be made here.
            self._give_up(exc, f"fetching entry {key[:12]}")
            return None
        return Deferred(key, meta, layer, staging,
                        Transfer(fetched, time.monotonic() - started, layer=False),
                        eager=_part(layer) is None)

    def fetch_layer(self, deferred: Deferred, store: CacheStore) -> Entry:
        """Fetch the layer of ``deferred`` and publish the whole entry into
        ``store``; LayerUnavailable (after its warning) when that fails."""
        started = time.monotonic()
        try:
            if not self.reads:
                raise LayerUnavailable([deferred.key])
            self._fetch_tar(deferred.layer, deferred.staging, "layer")
            unpacked = deferred.unpacked
            if not (unpacked / "layer").is_dir():
                raise BadEntry(f"entry {deferred.key[:12]} has no layer")
            extras = {name: unpacked / name for name in PARTS[1:]
                      if (unpacked / name).is_dir()}
            record = {name: deferred.meta[name] for name in META_FIELDS
                      if name in deferred.meta}
            record["remote"] = str(self.registry.ref)
            entry = store.publish(deferred.key, unpacked / "layer", record, extras=extras)
        except oci.DigestMismatch as exc:
            self._damaged(deferred.key, exc)
            raise LayerUnavailable([deferred.key]) from None
        except (oci.RegistryError, OSError, http.client.HTTPException) as exc:
            self._give_up(exc, f"fetching the layer of entry {deferred.key[:12]}")
            raise LayerUnavailable([deferred.key]) from None
        finally:
            discard(deferred)
        transfer = deferred.transfer
        deferred.transfer = Transfer(transfer.bytes + int(deferred.layer["size"]),
                                     transfer.seconds + time.monotonic() - started)
        return entry

    def pull(self, key: str, store: CacheStore) -> tuple[Entry, Transfer] | None:
        """The whole entry for ``key``, published into ``store`` at once."""
        deferred = self.lookup(key, store)
        if deferred is None:
            return None
        try:
            entry = self.fetch_layer(deferred, store)
        except LayerUnavailable:
            return None
        return entry, deferred.transfer

    def _fetch_manifest(self, key: str) -> tuple[dict[str, Any], dict[str, Any],
                                                 dict[str, Any], dict[str, Any] | None] | None:
        body = self.registry.get_manifest(oci.tag_for(key))
        if body is None:
            return None
        config, layer, extras = parse_manifest(body)
        try:
            meta = json.loads(self.registry.get_small_blob(config["digest"], config["size"]))
        except (ValueError, UnicodeDecodeError):
            raise BadEntry(f"the record of entry {key[:12]} is not JSON") from None
        check_meta(meta, key)
        return meta, config, layer, extras

    def _fetch_tar(self, descriptor: dict[str, Any], staging: Path, name: str) -> None:
        """Download one tar blob of an entry (checked against its digest as
        it comes) and unpack it into ``staging/entry``."""
        compressor = compressor_of(descriptor["mediaType"])
        blob = staging / f"{name}.blob"
        with open(blob, "wb") as out:
            self.registry.get_blob(descriptor["digest"], int(descriptor["size"]), out)
        unpack(blob, staging / "entry", compressor)
        blob.unlink()

    # -- pushing -------------------------------------------------------------------

    def push(self, entry: Entry, store: CacheStore) -> Transfer | None:
        """Upload ``entry`` unless the registry has it already; None when it
        was not pushed."""
        if not self.writes:
            return None
        started = time.monotonic()
        tag = oci.tag_for(entry.key)
        staging = _staging(store, f"push-{entry.key}")
        try:
            if entry.key not in self.damaged and self.registry.get_manifest(tag) is not None:
                return None  # another build pushed it already
            blobs = []
            for part, names in (("layer", PARTS[:1]), ("extras", PARTS[1:])):
                blob = staging / part
                if pack(entry.path, blob, self.compressor, names):
                    digest, size = oci.file_digest(blob)
                    blobs.append((part, blob, digest, size))
            config, manifest = entry_manifest(
                entry.key, entry.meta, [(part, digest, size) for part, _b, digest, size in blobs],
                self.compressor)
            self._put_blob(oci.sha256_digest(config), len(config), config)
            for _part, blob, digest, size in blobs:
                with open(blob, "rb") as data:
                    self._put_blob(digest, size, data)
            self.registry.put_manifest(tag, manifest)
        except (oci.RegistryError, CommandError, OSError, http.client.HTTPException) as exc:
            self._give_up(exc, f"pushing {entry.key[:12]}")
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Transfer(sum(size for *_rest, size in blobs), time.monotonic() - started)

    # -- finished images ---------------------------------------------------------

    def pull_outputs(self, key: str, staging: Path, prefix: str
                     ) -> tuple[list[Path], dict[str, Any], Transfer] | None:
        """The finished files kept under the outputs key ``key``, downloaded
        into ``staging`` and checked against their digests, with their record;
        None when the registry has none, or a warning said why not. Every
        file's name must start with ``prefix`` (the image's name)."""
        if not self.reads or key in self.damaged:
            return None
        started = time.monotonic()
        try:
            body = self.registry.get_manifest(oci.tag_for(key))
            if body is None:
                return None
            config, blobs = parse_outputs_manifest(body)
            try:
                record = json.loads(self.registry.get_small_blob(config["digest"],
                                                                 config["size"]))
            except (ValueError, UnicodeDecodeError):
                raise BadEntry(f"the record of outputs {key[:12]} is not JSON") from None
            names = check_outputs_record(record, key, blobs, prefix)
            files = [self._fetch_output(blob, staging / name)
                     for blob, name in zip(blobs, names)]
        except oci.DigestMismatch as exc:
            LOG.warning("remote cache: %s; discarding it and making the outputs here", exc)
            self.damaged.add(key)
            return None
        except (oci.RegistryError, CommandError, OSError, http.client.HTTPException) as exc:
            self._give_up(exc, f"fetching outputs {key[:12]}")
            return None
        size = int(config["size"]) + sum(int(blob["size"]) for blob in blobs)
        return files, record, Transfer(size, time.monotonic() - started)

    def _fetch_output(self, blob: dict[str, Any], target: Path) -> Path:
        compressor = OUTPUT_COMPRESSORS[blob["mediaType"]]
        if compressor is None:
            with open(target, "wb") as out:
                self.registry.get_blob(blob["digest"], int(blob["size"]), out)
            return target
        compressor_of(LAYER_TYPES[compressor])   # says so when zstd is missing
        packed = target.with_name(target.name + ".blob")
        with open(packed, "wb") as out:
            self.registry.get_blob(blob["digest"], int(blob["size"]), out)
        runner.run([compressor, "--decompress", "--quiet", "--force", str(packed),
                    "-o", str(target)], what="unpacking a finished image")
        packed.unlink()
        return target

    def push_outputs(self, key: str, files: list[Path], record: Mapping[str, Any],
                     staging: Path) -> Transfer | None:
        """Upload the finished ``files`` under the outputs key ``key`` unless
        the registry has them; ``record`` (each file's SHA-256, the packages)
        travels as the config. None when nothing was pushed."""
        if not self.writes:
            return None
        started = time.monotonic()
        try:
            if key not in self.damaged and \
                    self.registry.get_manifest(oci.tag_for(key)) is not None:
                return None
            blobs = [_output_blob(path, staging) for path in files]
            config, manifest = outputs_manifest(key, record, [b[1] for b in blobs])
            self._put_blob(oci.sha256_digest(config), len(config), config)
            for blob, (_name, digest, size, _type) in blobs:
                with open(blob, "rb") as data:
                    self._put_blob(digest, size, data)
            self.registry.put_manifest(oci.tag_for(key), manifest)
        except (oci.RegistryError, CommandError, OSError, http.client.HTTPException) as exc:
            self._give_up(exc, f"pushing outputs {key[:12]}")
            return None
        return Transfer(sum(b[1][2] for b in blobs), time.monotonic() - started)

    def _put_blob(self, digest: str, size: int, data: bytes | Any) -> None:
        if not self.registry.has_blob(digest):
            self.registry.put_blob(digest, size, data)


def discard(deferred: Deferred) -> None:
    """Drop what a deferred entry holds on disk."""
    shutil.rmtree(deferred.staging, ignore_errors=True)


def _staging(store: CacheStore, name: str) -> Path:
    staging = Path(os.path.join(store.tmp_dir, f"{name}.{os.getpid()}.{time.time_ns()}"))
    staging.mkdir()
    return staging


def entry_manifest(key: str, meta: Mapping[str, Any], blobs: list[tuple[str, str, int]],
                   compressor: str) -> tuple[bytes, bytes]:
    """(config blob, manifest) of the entry ``key``: the record travels as the
    config; ``blobs`` are (part, digest, size) of its packed tars, the
    ``layer`` and, when the step kept any, the ``extras``."""
    record = {name: meta[name] for name in META_FIELDS if name in meta}
    config = json.dumps(dict(record, key=key), sort_keys=True).encode()
    step = str(meta.get("step"))
    manifest = oci.image_manifest(
        oci.descriptor(CONFIG_TYPE, oci.sha256_digest(config), len(config)),
        [oci.descriptor(LAYER_TYPES[compressor], digest, size, {PART_ANNOTATION: part})
         for part, digest, size in blobs],
        annotations={"org.opencontainers.image.title": f"dib phase cache: {step}",
                     "dib.cache.key": key, "dib.cache.step": step})
    return config, manifest


class BadEntry(oci.RegistryError):
    """A manifest or record that is not a dib cache entry."""


def _part(layer: dict[str, Any]) -> str | None:
    annotations = layer.get("annotations")
    return annotations.get(PART_ANNOTATION) if isinstance(annotations, dict) else None


def parse_manifest(body: bytes) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(config, layer, extras or None) descriptors of a cache entry's
    manifest; BadEntry when it is not one. An entry of the older format has
    one tar, not annotated, holding the extras too."""
    config, layers = _config_and_layers(body, CONFIG_TYPE, "a dib cache entry")
    if not isinstance(layers, list) or not 1 <= len(layers) <= 2 or not all(
            oci.is_descriptor(layer) and layer.get("mediaType") in LAYER_TYPES.values()
            for layer in layers):
        raise BadEntry("a dib cache entry has one or two tar layers")
    parts = [_part(layer) for layer in layers]
    if parts == [None]:
        return config, layers[0], None
    if parts not in (["layer"], ["layer", "extras"]):
        raise BadEntry("a dib cache entry's tars are its layer and its extras, in that order")
    return config, layers[0], layers[1] if len(layers) == 2 else None


def _config_and_layers(body: bytes, config_type: str, what: str) -> tuple[dict[str, Any], Any]:
    """A manifest's config descriptor, which must be of ``config_type``, and
    its layers as found; BadEntry when the manifest is not ``what``."""
    try:
        manifest = oci.load_manifest(body)
    except ValueError as exc:
        raise BadEntry(str(exc)) from None
    config = manifest.get("config")
    if not oci.is_descriptor(config) or config.get("mediaType") != config_type:
        raise BadEntry(f"the manifest is not {what} (its config is not one)")
    return config, manifest.get("layers")


def check_meta(meta: Any, key: str) -> None:
    """The record must be for this very key (a tag is only a name)."""
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise BadEntry(f"the entry tagged for {key[:12]} is for another key")
    if not isinstance(meta.get("step"), str) or not isinstance(meta.get("inputs"), dict):
        raise BadEntry(f"the entry for {key[:12]} has no step or inputs")


def _output_blob(path: Path, staging: Path) -> tuple[Path, tuple[str, str, int, str]]:
    """(blob file, (name, digest, size, media type)) of one finished file: the
    file itself, or zstd of it when it is mostly holes (a raw disk), which a
    plain upload would send as zeros."""
    st = path.stat()
    if st.st_blocks * 512 >= st.st_size // 2 or not runner.which("zstd"):
        digest, size = oci.file_digest(path)
        return path, (path.name, digest, size, OUTPUT_TYPES[None])
    blob = staging / f"{path.name}.zst"
    runner.run(["zstd", "--quiet", "--force", "-T0", str(path), "-o", str(blob)],
               what="packing a finished image")
    digest, size = oci.file_digest(blob)
    return blob, (path.name, digest, size, OUTPUT_TYPES["zstd"])


def outputs_manifest(key: str, record: Mapping[str, Any],
                     blobs: list[tuple[str, str, int, str]]) -> tuple[bytes, bytes]:
    """(config blob, manifest) of the finished files of the outputs key
    ``key``: one blob a file, named by its title annotation."""
    config = json.dumps(dict(record, key=key, files=[name for name, *_rest in blobs]),
                        sort_keys=True).encode()
    manifest = oci.image_manifest(
        oci.descriptor(OUTPUTS_CONFIG_TYPE, oci.sha256_digest(config), len(config)),
        [oci.descriptor(media_type, digest, size, {"org.opencontainers.image.title": name})
         for name, digest, size, media_type in blobs],
        annotations={"org.opencontainers.image.title": "dib finished images",
                     "dib.cache.key": key, "dib.cache.step": "outputs"})
    return config, manifest


def parse_outputs_manifest(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(config, file blobs) of a finished-images manifest; BadEntry when it is not one."""
    config, layers = _config_and_layers(body, OUTPUTS_CONFIG_TYPE, "a dib outputs entry")
    if not isinstance(layers, list) or not layers or not all(
            oci.is_descriptor(layer) and layer.get("mediaType") in OUTPUT_COMPRESSORS
            for layer in layers):
        raise BadEntry("a dib outputs entry has one blob for each finished file")
    return config, layers


def check_outputs_record(record: Any, key: str, blobs: list[dict[str, Any]],
                         prefix: str) -> list[str]:
    """The file names of an outputs record, which must be for ``key``, name
    one file a blob, and name only files beside the image (``prefix``…)."""
    if not isinstance(record, dict) or record.get("key") != key:
        raise BadEntry(f"the outputs tagged for {key[:12]} are for another key")
    names = record.get("files")
    if not isinstance(names, list) or len(names) != len(blobs) or len(set(names)) != len(names):
        raise BadEntry(f"the outputs record for {key[:12]} does not list its files")
    for name in names:
        if not isinstance(name, str) or os.path.basename(name) != name \
                or not name.startswith(prefix + "."):
            raise BadEntry(f"the outputs record for {key[:12]} names {name!r}, "
                           f"not a file beside the image {prefix}")
    return names


def default_compressor() -> str:
    return "zstd" if runner.which("zstd") else "gzip"


def compressor_of(media_type: str) -> str:
    name = next(n for n, t in LAYER_TYPES.items() if t == media_type)
    if name == "zstd" and not runner.which("zstd"):
        raise BadEntry("the entry is compressed with zstd, which is not installed "
                       "(apt-get install zstd)")
    return name


def pack(entry_dir: Path, blob: Path, compressor: str,
         names: tuple[str, ...] = PARTS) -> bool:
    """Pack those of ``names`` that ``entry_dir`` holds into ``blob``; False
    (and no blob) when it holds none of them."""
    parts = [name for name in names if (entry_dir / name).exists()]
    if not parts:
        return False
    runner.run(["tar", "--create", f"--{compressor}", "--file", str(blob),
                "--directory", str(entry_dir), "--sort=name", *TAR_OPTIONS, *parts],
               what="packing a cache entry")
    return True


def unpack(blob: Path, destination: Path, compressor: str) -> None:
    try:
        runner.run(["tar", "--extract", f"--{compressor}", "--file", str(blob),
                    "--directory", str(destination), "--same-permissions", "--same-owner",
                    *TAR_OPTIONS],
                   what="unpacking a cache entry")
    except CommandError as exc:
        raise BadEntry(f"the entry's tar does not unpack: {exc}") from None


def from_settings(remote: str, *, mode: str, insecure: bool,
                  environ: Mapping[str, str]) -> RemoteCache:
    """The remote cache a build's settings ask for; DibError for one it may not use."""
    registry = oci.connect(oci.parse_ref(remote), insecure=insecure, environ=environ)
    return RemoteCache(registry, mode)
