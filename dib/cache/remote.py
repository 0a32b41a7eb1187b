"""The phase cache shared through an OCI registry.

Each entry is one image manifest in the repository, tagged with its key
(``oci.tag_for``): its config blob is the entry's record (the same fields as
``meta.json``), its one layer a compressed tar of the entry's directories
(``layer/`` and, for host-side steps, ``hooks-delta/`` and ``products/``).

A local miss asks the registry; what comes back is checked against its
digest, unpacked into the store's staging area and published like an entry
made here. Entries this build made are pushed once the build's outputs are
done. A registry that fails is worth one warning: the rest of the build goes
on without it, locally.
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
TAR_OPTIONS = ["--xattrs", "--xattrs-include=*", "--numeric-owner", "--sparse"]


@dataclass
class Transfer:
    bytes: int
    seconds: float


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
        LOG.warning("remote cache %s: %s while %s; building locally without it",
                    self.registry.ref, error, doing)
        self.failed = True

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

    def pull(self, key: str, store: CacheStore) -> tuple[Entry, Transfer] | None:
        """The entry for ``key`` from the registry, published into ``store``;
        None when the registry has none (or it could not be used)."""
        if not self.reads:
            return None
        started = time.monotonic()
        try:
            found = self._fetch_manifest(key)
            if found is None:
                return None
            meta, layer = found
            entry = self._fetch_entry(key, meta, layer, store)
        except oci.DigestMismatch as exc:
            # One damaged blob says nothing about the others: keep using the
            # registry, and replace this entry when the build pushes.
            LOG.warning("remote cache: %s; discarding it and making this step here", exc)
            self.damaged.add(key)
            return None
        except (oci.RegistryError, OSError, http.client.HTTPException) as exc:
            # Whatever went wrong, the step can still be made here.
            self._give_up(exc, f"fetching entry {key[:12]}")
            return None
        return entry, Transfer(int(layer["size"]), time.monotonic() - started)

    def _fetch_manifest(self, key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        body = self.registry.get_manifest(oci.tag_for(key))
        if body is None:
            return None
        config, layer = parse_manifest(body)
        try:
            meta = json.loads(self.registry.get_small_blob(config["digest"], config["size"]))
        except (ValueError, UnicodeDecodeError):
            raise BadEntry(f"the record of entry {key[:12]} is not JSON") from None
        check_meta(meta, key)
        return meta, layer

    def _fetch_entry(self, key: str, meta: dict[str, Any], layer: dict[str, Any],
                     store: CacheStore) -> Entry:
        compressor = compressor_of(layer["mediaType"])
        staging = Path(os.path.join(store.tmp_dir, f"pull-{key}.{os.getpid()}.{time.time_ns()}"))
        staging.mkdir()
        try:
            blob = staging / "blob"
            with open(blob, "wb") as out:
                self.registry.get_blob(layer["digest"], int(layer["size"]), out)
            unpacked = staging / "entry"
            unpacked.mkdir()
            unpack(blob, unpacked, compressor)
            blob.unlink()
            if not (unpacked / "layer").is_dir():
                raise BadEntry(f"entry {key[:12]} has no layer")
            extras = {name: unpacked / name for name in PARTS[1:]
                      if (unpacked / name).is_dir()}
            record = {name: meta[name] for name in META_FIELDS if name in meta}
            record["remote"] = str(self.registry.ref)
            return store.publish(key, unpacked / "layer", record, extras=extras)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # -- pushing -------------------------------------------------------------------

    def push(self, entry: Entry, store: CacheStore) -> Transfer | None:
        """Upload ``entry`` unless the registry has it already; None when it
        was not pushed."""
        if not self.writes:
            return None
        started = time.monotonic()
        tag = oci.tag_for(entry.key)
        staging = Path(os.path.join(store.tmp_dir,
                                    f"push-{entry.key}.{os.getpid()}.{time.time_ns()}"))
        staging.mkdir()
        try:
            if entry.key not in self.damaged and self.registry.get_manifest(tag) is not None:
                return None  # another build pushed it already
            blob = staging / "blob"
            pack(entry.path, blob, self.compressor)
            digest, size = oci.file_digest(blob)
            config, manifest = entry_manifest(entry.key, entry.meta, digest, size,
                                              self.compressor)
            config_digest = oci.sha256_digest(config)
            if not self.registry.has_blob(config_digest):
                self.registry.put_blob(config_digest, len(config), config)
            if not self.registry.has_blob(digest):
                with open(blob, "rb") as data:
                    self.registry.put_blob(digest, size, data)
            self.registry.put_manifest(tag, manifest)
        except (oci.RegistryError, CommandError, OSError, http.client.HTTPException) as exc:
            self._give_up(exc, f"pushing {entry.key[:12]}")
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Transfer(size, time.monotonic() - started)


def entry_manifest(key: str, meta: Mapping[str, Any], layer_digest: str, layer_size: int,
                   compressor: str) -> tuple[bytes, bytes]:
    """(config blob, manifest) of the entry ``key`` whose packed tar has
    ``layer_digest``: the record travels as the config, the tar as the one layer."""
    record = {name: meta[name] for name in META_FIELDS if name in meta}
    config = json.dumps(dict(record, key=key), sort_keys=True).encode()
    step = str(meta.get("step"))
    manifest = oci.image_manifest(
        oci.descriptor(CONFIG_TYPE, oci.sha256_digest(config), len(config)),
        [oci.descriptor(LAYER_TYPES[compressor], layer_digest, layer_size)],
        annotations={"org.opencontainers.image.title": f"dib phase cache: {step}",
                     "dib.cache.key": key, "dib.cache.step": step})
    return config, manifest


class BadEntry(oci.RegistryError):
    """A manifest or record that is not a dib cache entry."""


def parse_manifest(body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, layer) descriptors of a cache entry's manifest; BadEntry
    when it is not one."""
    try:
        manifest = oci.load_manifest(body)
    except ValueError as exc:
        raise BadEntry(str(exc)) from None
    config = manifest.get("config")
    layers = manifest.get("layers")
    if not oci.is_descriptor(config) or config.get("mediaType") != CONFIG_TYPE:
        raise BadEntry("the manifest is not a dib cache entry (its config is not one)")
    if not isinstance(layers, list) or len(layers) != 1 or not oci.is_descriptor(layers[0]) \
            or layers[0].get("mediaType") not in LAYER_TYPES.values():
        raise BadEntry("a dib cache entry has exactly one tar layer")
    return config, layers[0]


def check_meta(meta: Any, key: str) -> None:
    """The record must be for this very key (a tag is only a name)."""
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise BadEntry(f"the entry tagged for {key[:12]} is for another key")
    if not isinstance(meta.get("step"), str) or not isinstance(meta.get("inputs"), dict):
        raise BadEntry(f"the entry for {key[:12]} has no step or inputs")


def default_compressor() -> str:
    return "zstd" if runner.which("zstd") else "gzip"


def compressor_of(media_type: str) -> str:
    name = next(n for n, t in LAYER_TYPES.items() if t == media_type)
    if name == "zstd" and not runner.which("zstd"):
        raise BadEntry("the entry is compressed with zstd, which is not installed "
                       "(apt-get install zstd)")
    return name


def pack(entry_dir: Path, blob: Path, compressor: str) -> None:
    parts = [name for name in PARTS if (entry_dir / name).exists()]
    runner.run(["tar", "--create", f"--{compressor}", "--file", str(blob),
                "--directory", str(entry_dir), "--sort=name", *TAR_OPTIONS, *parts],
               what="packing a cache entry")


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
