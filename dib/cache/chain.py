"""The chain of checkpoints one build walks through, and why each was or wasn't reused."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from dib.cache import archive, keys, products
from dib.cache.remote import Deferred, LayerUnavailable, RemoteCache, Transfer, discard
from dib.cache.store import CacheStore, Entry
from dib.config.build import BuildConfig
from dib.runtime.mounts import id_mapping

LOG = logging.getLogger("dib.cache")
HOOKS_DELTA = "hooks-delta"


class Checkpoints:
    """Keys for each step of a build, lookups and stores. With no store
    (``--no-cache``) every step is simply rebuilt.

    A step's key is made of the identity of the tree it starts from and of
    its own inputs. The tree's identity is chained from the identity of each
    layer: a small layer is identified by what it holds, so a step that reran
    but wrote the same files does not force the steps after it to rerun.
    """

    def __init__(self, store: CacheStore | None, remote: RemoteCache | None = None) -> None:
        self.store = store
        self.remote = remote if store is not None else None
        #: key → what the registry sent, for the steps pulled from it
        self.pulled: dict[str, Transfer] = {}
        #: keys of the entries this build made and stored, in order
        self.made: list[str] = []
        #: key → why the remote cache did not give the step it was asked for
        self.remote_misses: dict[str, str] = {}
        #: key → entries taken from the registry whose layers are not here
        #: yet, in the order of the tree (fetch_deferred brings them)
        self.deferred: dict[str, Deferred] = {}
        self.tree_id: str | None = None
        self.settings: dict[str, str] = {}
        #: what the build's hooks get, environment.d sourced: the bootstrap
        #: is keyed on the values it reads, not on environment.d's text
        self.environment: dict[str, str] = {}
        self.element_data: dict[str, str] = {}
        self.packages = ""
        #: the apt archives' state, an input of the bootstrap (dib.cache.archive)
        self.archives: dict[str, str] = {}
        self._last_key: str | None = None
        self._changed_at: str | None = None
        self._tainted = False
        self.image = Path("image")
        self.recorded: dict[str, str] = {}
        #: key → the files and directories beside the image that the step
        #: wrote or that its cache entry put back (host-side steps only)
        self.products: dict[str, list[Path]] = {}

    def start(self, env: Mapping[str, str], config: BuildConfig,
              elements: list[tuple[str, Path]]) -> None:
        self.image = Path(config.image_name)
        self.settings = keys.settings_inputs(env, image_name=config.image_name)
        mapping = id_mapping()
        if mapping is not None:
            # A rootless build: its files' owners on disk depend on the
            # mapping. Root builds have no such input, so their keys stay.
            self.settings[keys.IDS_INPUT] = mapping
        self.environment = dict(env)
        self.recorded = {name: env.get(name, "") for name in keys.RECORDED_VARS}
        self.element_data = keys.element_data_inputs(elements)
        self.packages = " ".join(config.packages)
        if self.store is not None:
            self.archives = archive.archive_inputs(
                env, arch=config.arch, offline=config.offline,
                remembered=self.store.root / archive.REMEMBERED)

    def phase_inputs(self, hooks_dir: Path, phase_name: str,
                     segment: keys.Segment | None = None) -> dict[str, str]:
        """What the phase's step reads; with a declared ``segment``, what
        its hooks declare (keys.declared_inputs)."""
        if segment is not None and segment.declared:
            inputs = keys.declared_inputs(hooks_dir, f"{phase_name}.d", segment,
                                          self.settings, self.environment)
            self._add_recorded(inputs, [hooks_dir / f"{phase_name}.d" / h
                                        for h in segment.hooks])
            return inputs
        if phase_name == "packages":
            inputs = {k: v for k, v in self.settings.items()
                      if k not in (keys.ELEMENTS_INPUT, keys.IMAGE_NAME_INPUT)}
            inputs.update(keys.tree_inputs(hooks_dir / "bin", "bin"))
            inputs["setting:packages"] = self.packages
            return inputs
        inputs = keys.phase_inputs(hooks_dir, f"{phase_name}.d", self.settings,
                                   self.element_data, environment=self.environment)
        self._add_recorded(inputs, [hooks_dir / f"{phase_name}.d"])
        if phase_name == "root":
            inputs.update(self.archives)
        return inputs

    def _add_recorded(self, inputs: dict[str, str], hooks: list[Path]) -> None:
        for name, value in self.recorded.items():
            if any(keys.mentions(hook, name) for hook in hooks):
                inputs[f"recorded:{name}"] = value

    def internal_inputs(self, name: str, values: Mapping[str, str]) -> dict[str, str]:
        return {f"internal:{name}:{k}": v for k, v in values.items()}

    def key(self, step: str, inputs: Mapping[str, str]) -> str:
        return keys.key_for(self.tree_id, step, inputs)

    def lookup(self, key: str, hooks_dir: Path) -> Path | None:
        if self.store is None or self._tainted:
            return None
        entry = self.store.use(key)
        return None if entry is None else self._reuse(key, entry, hooks_dir)

    def _reuse(self, key: str, entry: Entry, hooks_dir: Path) -> Path:
        self._take(key, entry.meta, entry.path, hooks_dir)
        return entry.layer

    def _take(self, key: str, meta: Mapping[str, Any], parts: Path, hooks_dir: Path) -> None:
        """Redo what a reused step did outside its layer (``parts`` holds
        its hooks-tree changes and products) and chain its output."""
        _apply_hooks_delta(parts / HOOKS_DELTA, hooks_dir)
        restored = products.restore(parts / products.PRODUCTS, self.image)
        if restored:
            LOG.info("restored %s from the cache", " ".join(p.name for p in restored))
            self.products[key] = restored
        self._advance(meta.get("output") or key)
        self._last_key = key

    def _pull(self, key: str, hooks_dir: Path) -> Path | None:
        """The entry for ``key`` from the shared cache. Its record and extras
        come now; its layer only once something needs the tree
        (``fetch_deferred``): the path returned is where it will be."""
        if self.remote is None or self.store is None:
            return None
        if not self.remote.reads:
            return None
        deferred = self.remote.lookup(key, self.store)
        if deferred is None:
            self._note_remote_miss(key)
            return None
        if deferred.eager:
            pulled = self._fetch([deferred])
            return self._reuse(key, pulled[0], hooks_dir) if pulled else None
        self.deferred[key] = deferred
        self.pulled[key] = deferred.transfer
        LOG.info("pulled the record of step %s from the remote cache (%d bytes in %.1f s); "
                 "its layer is fetched when needed", deferred.meta.get("step"),
                 deferred.transfer.bytes, deferred.transfer.seconds)
        self._take(key, deferred.meta, deferred.unpacked, hooks_dir)
        return self.store.entries_dir / key / "layer"

    def _note_remote_miss(self, key: str) -> None:
        if self.remote is None:
            return
        if key in self.remote.damaged:
            self.remote_misses[key] = "the remote cache's copy was damaged"
        elif self.remote.reads:
            self.remote_misses[key] = "not in the remote cache either"

    def fetch_deferred(self) -> list[str]:
        """Bring every deferred layer into the local cache: the tree is
        about to be used. Returns the keys fetched; LayerUnavailable when
        any could not be (the others are kept: a build that starts over
        finds them locally)."""
        waiting = list(self.deferred.values())
        self.deferred.clear()
        if not waiting:
            return []
        fetched = self._fetch(waiting)
        failed = [d.key for d in waiting if d.key not in {e.key for e in fetched}]
        if failed:
            raise LayerUnavailable(failed)
        return [d.key for d in waiting]

    def _fetch(self, waiting: list[Deferred]) -> list[Entry]:
        """Fetch layers side by side (download and unpacking overlap); the
        entries that came."""
        assert self.remote is not None and self.store is not None
        remote, store = self.remote, self.store

        def one(deferred: Deferred) -> Entry | None:
            try:
                entry = remote.fetch_layer(deferred, store)
            except LayerUnavailable:
                self._note_remote_miss(deferred.key)
                return None
            self.pulled[deferred.key] = deferred.transfer
            LOG.info("pulled the layer of step %s from the remote cache (%d bytes in %.1f s)",
                     deferred.meta.get("step"), deferred.transfer.bytes,
                     deferred.transfer.seconds)
            return entry   # publish holds it against pruning, like any entry in use
        with ThreadPoolExecutor(max_workers=2) as pool:
            return [e for e in pool.map(one, waiting) if e is not None]

    def start_over(self) -> None:
        """Forget the walk so far (a deferred layer failed): the next walk
        finds what this one fetched or made in the local cache."""
        for deferred in self.deferred.values():
            discard(deferred)
        self.deferred.clear()
        self.tree_id = None
        self._last_key = None
        self._changed_at = None
        self._tainted = False
        self.products.clear()

    @contextmanager
    def making(self, key: str, step: str, inputs: Mapping[str, str],
               hooks_dir: Path) -> Iterator[Path | None]:
        """Held while this build makes a step. Yields the layer another build
        made for the same key while this one waited for it, or the one the
        remote cache holds, or None: make it."""
        if self.store is None or self._tainted or "uncacheable" in inputs:
            yield None
            return
        with self.store.making(key, f"step {step}"):
            yield self.lookup(key, hooks_dir) or self._pull(key, hooks_dir)

    def why_rebuilt(self, step: str, inputs: Mapping[str, str]) -> str:
        if self.store is None:
            return "the cache is off (--no-cache)"
        if "uncacheable" in inputs:
            return keys.describe_change("uncacheable", {}, inputs)
        same_step = [e for e in self.store.entries() if e.meta.get("step") == step]
        if not same_step:
            return "no entry for this step yet"
        if any(e.meta.get("inputs") == dict(inputs) for e in same_step):
            changed = self._changed_at or "an earlier step"
            return f"its inputs are unchanged but the tree before it is not ({changed} " \
                   "wrote different files)"
        # Against the last build of this step on the same tree when there is
        # one: in a cache other builds share, the last of all may be theirs.
        same_tree = [e for e in same_step if e.parent == self._last_key]
        latest = max(same_tree or same_step, key=lambda e: e.last_used)
        old = latest.meta.get("inputs", {})
        changed = keys.changed_inputs(old, inputs)
        shown = [keys.describe_change(n, old, inputs) for n in changed[:3]]
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return "; ".join(shown) + more

    def store_layer(self, key: str, step: str, inputs: Mapping[str, str], layer: Path,
                    hooks_before: Mapping[str, str] | None, hooks_dir: Path,
                    build: str, beside_before: products.Snapshot | None = None
                    ) -> Path | None:
        """Record what the step produced; keep it in the cache when allowed.
        ``hooks_before`` and ``beside_before`` (host-side steps) are what
        TMP_HOOKS_PATH and the files beside the image held before it ran."""
        extras: dict[str, Path] = {}
        if hooks_before is not None:
            delta = _hooks_delta(hooks_before, hooks_dir, layer.parent / f".delta-{step}")
            if delta is not None:
                extras[HOOKS_DELTA] = delta
        if beside_before is not None:
            made = products.stage(self.image, beside_before,
                                  layer.parent / f".products-{step}")
            if made is not None:
                extras[products.PRODUCTS] = made
                self.products[key] = [self.image.parent / p.name for p in sorted(made.iterdir())]
        output = keys.layer_identity(layer)
        LOG.debug("step %s wrote %s", step, output or "a layer too big to compare")
        if output is None and "uncacheable" in inputs:
            # A big layer from a step that always reruns: what follows can
            # never be found again, so storing it would only fill the disk.
            self._tainted = True
        self._advance(output or key)
        self._changed_at = self._changed_at or step
        if self.store is None or self._tainted or "uncacheable" in inputs:
            for path in extras.values():
                shutil.rmtree(path, ignore_errors=True)
            return None
        # The parent is the entry below it in the cache; a step that is never
        # stored reruns in every build, so it is no parent.
        meta = {"parent": self._last_key, "step": step, "inputs": dict(inputs), "build": build,
                "output": output or key}
        entry = self.store.publish(key, layer, meta, extras=extras)
        self._last_key = key
        self.made.append(key)
        return entry.layer

    def push_made(self) -> dict[str, Transfer]:
        """Upload the entries this build made to the remote cache; key → what
        was sent, for those that were."""
        pushed: dict[str, Transfer] = {}
        if self.remote is None or self.store is None:
            return pushed
        for key in self.made:
            entry = self.store.get(key)
            if entry is None or not self.remote.writes:
                continue
            transfer = self.remote.push(entry, self.store)
            if transfer is not None:
                pushed[key] = transfer
        return pushed

    def _advance(self, output: str) -> None:
        self.tree_id = _chain(self.tree_id, output)

    def close(self) -> None:
        for deferred in self.deferred.values():
            discard(deferred)
        self.deferred.clear()
        if self.store is not None:
            self.store.close()


def _chain(tree_id: str | None, output: str | None) -> str:
    return hashlib.sha256(f"{tree_id}\0{output}".encode()).hexdigest()


def snapshot_hooks(hooks_dir: Path) -> dict[str, str]:
    return keys.tree_inputs(hooks_dir, ".")


def _hooks_delta(before: Mapping[str, str], hooks_dir: Path, staging: Path) -> Path | None:
    """Files a host-side step added or changed in TMP_HOOKS_PATH (extra-data.d
    does this), so a cache hit can redo its effect there too."""
    after = snapshot_hooks(hooks_dir)
    changed = [name for name in after if before.get(name) != after[name]]
    removed = [name for name in before if name not in after]
    if not changed and not removed:
        return None
    shutil.rmtree(staging, ignore_errors=True)
    files = staging / "files"
    files.mkdir(parents=True)
    for name in changed:
        rel = os.path.normpath(name)
        source, target = hooks_dir / rel, files / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)
    (staging / "removed.json").write_text(json.dumps([os.path.normpath(n) for n in removed]))
    return staging


def _apply_hooks_delta(delta: Path, hooks_dir: Path) -> None:
    if not delta.is_dir():
        return
    for name in json.loads((delta / "removed.json").read_text()):
        (hooks_dir / name).unlink(missing_ok=True)
    files = delta / "files"
    for directory, _dirs, names in os.walk(files):
        for name in names:
            source = Path(directory) / name
            target = hooks_dir / source.relative_to(files)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
            else:
                shutil.copy2(source, target)


def entry_summary(entry: Entry) -> dict[str, Any]:
    return {"key": entry.key, "step": entry.meta.get("step"), "size": entry.size,
            "created": entry.meta.get("created"), "last_used": entry.last_used,
            "build": entry.meta.get("build"), "parent": entry.parent,
            "remote": entry.meta.get("remote")}
