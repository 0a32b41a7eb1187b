"""Builder: runs every step of one build inside the private namespace.

The order: set up the hooks tree and environment; run each phase in DIB's
order (each in its own overlay layer, reused from the cache when its key
matches); tidy the tree; write the SBOM; produce the outputs; write the
provenance (it names the finished files by digest); report.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping

from dib import __version__, blockdev, bootloader, provenance, sbom
from dib.cache import CacheStore, Checkpoints, keys, products, prune, snapshot_hooks
from dib.cache.disks import DiskBases
from dib.cache.gzstream import CACHE_SUBDIR as GZIP_CACHE_SUBDIR
from dib.cache.outputs import OutputCache
from dib.cache.remote import LayerUnavailable, RemoteCache, from_settings
from dib.config.build import BuildConfig, host_arch
from dib.elements import element_paths, shipped_hooks_dir
from dib.elements.package_installs import squash
from dib.errors import DibError
from dib.pipeline import artifacts
from dib.pipeline.prepare import Prepared
from dib.pipeline.report import BuildReport, FailureReport, StepReport, transfer_text
from dib.plan import PHASES, Phase
from dib.runtime import hooktree, reproducible
from dib.runtime.environment import base_environment, sourced_environment
from dib.runtime.hostshims import (write_cpio_shim, write_host_shims, write_sudo_shim,
                                   write_sudo_to_shims)
from dib.runtime.mounts import CleanupStack, in_user_namespace
from dib.runtime.phases import (WHOLE_PHASE, HookRange, HookRun, PhaseContext, phase_hooks,
                                run_phase)
from dib.runtime.tidy import tidy_tree
from dib.runtime.tree import LayeredTree
from dib.runtime.workspace import Workspace
from dib.sbom.dpkg import DebPackage
from dib.sbom.inventory import Distro

LOG = logging.getLogger("dib.build")


class Builder:
    def __init__(self, prepared: Prepared, workspace: Workspace) -> None:
        self.prepared = prepared
        self.config = prepared.config
        self.ws = workspace
        self.tree = LayeredTree(workspace.layers, workspace.tree)
        self.report = BuildReport(image_name=self.config.image_name,
                                  elements=prepared.resolution.names)
        self.store = None if self.config.no_cache else CacheStore(
            Path(self.config.cache_dir) / "phases")
        self.remote = _remote_cache(self.config) if self.store is not None else None
        self.checkpoints = Checkpoints(self.store, self.remote)
        self.outputs_cache = None if self.config.no_cache else OutputCache(
            Path(self.config.cache_dir))
        self.disk_bases = None if self.config.no_cache else DiskBases(
            Path(self.config.cache_dir))
        #: (outputs key, files) of the finished files this build made
        self._outputs_made: tuple[str, list[Path]] | None = None
        #: output file name → SHA-256, for the provenance
        self.output_sha256: dict[str, str] = {}
        #: wall-clock start of the build proper, for the provenance
        self.started_on = time.time()
        #: what the phases write beside the image, read for the provenance meanwhile
        self.digests_ahead = provenance.DigestsAhead()

    def run(self) -> int:
        started = time.monotonic()
        try:
            if self.remote is not None and self.config.cache_remote_required:
                self.remote.check()
            ctx = self._setup()
            self._preflight_hooks(ctx)
            self._walk(ctx)
            self._push()
        except BaseException as exc:
            self.report.failure = FailureReport.from_error(exc)
            raise
        finally:
            self.tree.abort_layer()
            self.digests_ahead.close()
            self._note_transfers()
            self.checkpoints.close()
            if self.store is not None:
                prune(self.store, max_size=self.config.cache_max_size or None)
            self.report.seconds = time.monotonic() - started
            self._write_report()
        return 0

    def _walk(self, ctx: PhaseContext) -> None:
        """Every step, the outputs and the provenance. Layers taken from the
        remote cache are fetched only when the tree is needed; one that
        cannot be fetched then (damaged, or the registry failed) is known
        only after the steps above it were taken as hits, so the walk starts
        over: what was fetched or made is in the local cache by now, and that
        step is made here."""
        saved = self._save_hooks() if self.remote is not None and self.remote.reads else None
        steps, hooks = len(self.report.steps), len(self.report.hooks)
        while True:
            try:
                self._walk_once(ctx)
                return
            except LayerUnavailable as exc:
                if saved is None:
                    raise
                LOG.info("starting the steps again: %d layers from the remote cache could "
                         "not be pulled", len(exc.keys))
                self.tree.abort_layer()
                self.tree.clear()
                del self.report.steps[steps:]
                del self.report.hooks[hooks:]
                self.checkpoints.start_over()
                _copy_tree(saved, self.ws.hooks)

    def _walk_once(self, ctx: PhaseContext) -> None:
        for phase in PHASES:
            if not phase.step:
                continue
            if phase.name == "pre-finalise" and self.disk.config is not None:
                self._internal_step("fstab", {"fstab": self.disk.fstab_text()},
                                    self.disk.write_fstab)
            if self._has_work(phase):
                self._phase_step(ctx, phase)
            if phase.name == "finalise" and self.disk.wants_bootloader:
                self._bootloader_step()
        self._internal_step("tidy", {"version": "1"}, tidy_tree)
        if self._epoch() is not None:
            self._internal_step("reproducible", {"version": "1"}, _settle)
        if self.config.sbom:
            self._sbom_step()
        produced = self._outputs()
        self.report.outputs = [str(p) for p in produced] + [
            f"{self.config.image_name}.{sbom.FORMATS[kind][0]}" for kind in self.config.sbom]
        written = self._provenance_step(produced) if self.config.provenance else None
        if written is not None:
            self.report.outputs.append(str(written))

    def _save_hooks(self) -> Path:
        """A copy of the hooks tree before any step changed it, for a walk
        that starts over (phase keys read it; extra-data.d writes into it)."""
        saved = self.ws.root / "hooks-before-steps"
        _copy_tree(self.ws.hooks, saved)
        return saved

    def _need_tree(self) -> None:
        """Something is about to run on the tree or read it: fetch the layers
        that so far only had their records pulled."""
        for key in self.checkpoints.fetch_deferred():
            if self.config.explain_cache:
                step = next((s.name for s in self.report.steps if s.key == key), key[:12])
                LOG.info("cache: %-13s layer pulled from the remote cache (%s)", step,
                         transfer_text(vars(self.checkpoints.pulled[key])))

    def _note_transfers(self) -> None:
        """What each step pulled, now that deferred layers may have come too."""
        for step in self.report.steps:
            if step.key in self.checkpoints.pulled:
                step.pulled = vars(self.checkpoints.pulled[step.key])

    # -- set-up -------------------------------------------------------------

    def _write_host_shims(self) -> None:
        """The commands host-side hooks find first (runtime/hostshims.py):
        cpio; gzip (docs/caching.md), unless DIB_GZIP_CACHE=0, which with
        --no-cache still compresses on every core but keeps nothing; sudo, a
        stand-in in a build without root (docs/rootless.md), else the host's
        sudo pointed at these shims."""
        host_path = self.config.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        write_cpio_shim(self.ws.host_bin, path=host_path)
        if self.config.gzip_cache:
            cache = (None if self.config.no_cache
                     else Path(self.config.cache_dir) / GZIP_CACHE_SUBDIR)
            if not write_host_shims(self.ws.host_bin, path=host_path, cache=cache):
                LOG.warning("no gzip on PATH: host-side hooks get no gzip shim")
        if in_user_namespace():
            write_sudo_shim(self.ws.host_bin)
        else:
            write_sudo_to_shims(self.ws.host_bin, path=host_path)

    def _setup(self) -> PhaseContext:
        config, ws = self.config, self.ws
        resolution = self.prepared.resolution
        hooktree.merge_hooks_tree(resolution.elements, shipped_hooks_dir(), ws.hooks)
        hooktree.write_install_type(ws.hooks, config.install_type)
        self._write_host_shims()
        paths = element_paths(config.environ)
        self.disk = artifacts.disk_artifacts(self.prepared)
        extra = artifacts.default_mirrors(config.environ)
        extra.update(self.disk.hook_environment())
        env = base_environment(config, workspace=ws, resolution=resolution,
                               elements_path=paths, extra=extra)
        self.env = sourced_environment(ws.hooks, env)
        entries = [(e.name, e.package_installs) for e in resolution.elements
                   if e.package_installs is not None]
        hooktree.write_package_installs(ws.hooks, squash(entries, env=self.env,
                                                         arch=config.arch))
        hook_elements = {f"{s.phase}/{s.hook}": s.element for s in self.prepared.plan.steps}
        self.checkpoints.start(self.env, config,
                               [(e.name, e.path) for e in resolution.elements])
        return PhaseContext(workspace=ws, env=env, hook_elements=hook_elements,
                            hook_timeout=config.hook_timeout,
                            break_points=config.break_points,
                            host_ca_bundle=Path(config.host_ca_bundle)
                            if config.host_ca_bundle else None,
                            on_hook=self._on_hook)

    def _preflight_hooks(self, ctx: PhaseContext) -> None:
        """The elements' own checks (preflight.d), on every build, before the
        bootstrap or any cached step: they read settings and write nothing."""
        for phase in PHASES:
            if not phase.step and self._has_work(phase):
                run = run_phase(ctx, phase)
                LOG.info("%s: %d checks passed in %.2f s", phase.directory,
                         len(run.hooks), run.seconds)

    def _has_work(self, phase: Phase) -> bool:
        if phase.name == "packages":
            return bool(self.config.packages)
        return bool(self.prepared.plan.steps_of(phase.name)) or \
            (self.ws.hooks / phase.directory).is_dir()

    # -- steps --------------------------------------------------------------

    def _phase_step(self, ctx: PhaseContext, phase: Phase) -> None:
        if phase.name == "packages":
            argv = ["/tmp/in_target.d/bin/install-packages", *self.config.packages]
            self._phase_part(ctx, phase, self.checkpoints.phase_inputs(self.ws.hooks, phase.name),
                             phase.name, argv=argv)
            return
        if not phase.in_chroot:
            inputs = self.checkpoints.phase_inputs(self.ws.hooks, phase.name)
            if phase.name == "cleanup":
                # cleanup.d writes beside the image (manifests, a ramdisk's
                # kernel and initramfs): where is part of what it does.
                inputs["image-path"] = self.config.image_name
            self._phase_part(ctx, phase, inputs, phase.name)
            return
        # A chroot phase whose first hooks declare what they read runs them
        # as a step of their own (keys.phase_segments). Host-side phases are
        # not split: they change the hooks tree, which later keys read.
        directory = self.ws.hooks / phase.directory
        for segment in keys.phase_segments(directory, phase_hooks(ctx, phase)):
            inputs = self.checkpoints.phase_inputs(self.ws.hooks, phase.name, segment)
            name = f"{phase.name}:{segment.through}" if segment.through else phase.name
            self._phase_part(ctx, phase, inputs, name,
                             part=HookRange(through=segment.through, after=segment.after))

    def _phase_part(self, ctx: PhaseContext, phase: Phase, inputs: dict[str, str], name: str,
                    *, argv: list[str] | None = None, part: HookRange = WHOLE_PHASE) -> None:
        def action(_tree: Path) -> None:
            run = run_phase(ctx, phase, argv=argv, part=part)
            if phase.name == "root":
                _check_root_made(self.ws.tree)
            self._current.hooks = [h.__dict__ for h in run.hooks]
        self._step(name, inputs, action, host_side=not phase.in_chroot)

    def _internal_step(self, name: str, values: dict[str, str],
                       action: Callable[[Path], None]) -> None:
        self._step(name, self.checkpoints.internal_inputs(name, values), action)

    def _step(self, name: str, inputs: dict[str, str], action: Callable[[Path], None],
              host_side: bool = False) -> None:
        key = self.checkpoints.key(name, inputs)
        self._current = StepReport(name=name, key=key)
        self.report.steps.append(self._current)
        started = time.monotonic()
        hit = self.checkpoints.lookup(key, self.ws.hooks)
        if hit is None:
            with self.checkpoints.making(key, name, inputs, self.ws.hooks) as hit:
                if hit is None:
                    self._current.reason = self.checkpoints.why_rebuilt(name, inputs)
                    if key in self.checkpoints.remote_misses:
                        self._current.reason += "; " + self.checkpoints.remote_misses[key]
                    self._make(name, key, inputs, action, host_side)
        if hit is not None:
            self.tree.add_layer(hit)
            self._current.cached = True
        self._current.cache = _cache_word(hit is not None, self.checkpoints.pulled.get(key))
        if key in self.checkpoints.pulled:
            self._current.pulled = vars(self.checkpoints.pulled[key])
        if self.config.provenance and key in self.checkpoints.products:
            self.digests_ahead.start(self.checkpoints.products[key])
        self._current.seconds = time.monotonic() - started
        if self.config.explain_cache:
            LOG.info("cache: %-13s %s", name, self._current.explanation())

    def _make(self, name: str, key: str, inputs: dict[str, str],
              action: Callable[[Path], None], host_side: bool) -> None:
        self._need_tree()
        before = snapshot_hooks(self.ws.hooks) if host_side else None
        beside = products.snapshot(Path(self.config.image_name)) if host_side else None
        tree = self.tree.open_layer(name)
        try:
            action(tree)
        except BaseException:
            self.tree.abort_layer()
            raise
        layer = self.tree.close_layer()
        stored = self.checkpoints.store_layer(key, name, inputs, layer, before,
                                              self.ws.hooks, build=self.ws.root.name,
                                              beside_before=beside)
        if stored is not None:
            self.tree.replace_top(stored)

    def _push(self) -> None:
        """Share what this build made, now that its outputs are done."""
        if self.remote is None or not self.remote.writes:
            return
        pushed = self.checkpoints.push_made()
        for step in self.report.steps:
            if step.key in pushed:
                step.pushed = vars(pushed[step.key])
                if self.config.explain_cache:
                    LOG.info("cache: %-13s pushed to the remote cache (%s)", step.name,
                             transfer_text(step.pushed))
        if pushed:
            LOG.info("pushed %d steps to the remote cache %s (%d bytes)", len(pushed),
                     self.remote.registry.ref, sum(t.bytes for t in pushed.values()))
        self._push_outputs()

    def _push_outputs(self) -> None:
        """Share the finished files this build made (not those it restored),
        after the steps: a build that finds them has found every step first."""
        if self._outputs_made is None or self.outputs_cache is None or self.remote is None:
            return
        key, files = self._outputs_made
        facts = {"sha256": self._sha256(files, self.outputs_cache.sha256(key)),
                 "facts": self.outputs_cache.facts(key)}
        with tempfile.TemporaryDirectory(prefix=".push-", dir=self.outputs_cache.root) as tmp:
            transfer = self.remote.push_outputs(key, files, facts, Path(tmp))
        if transfer is None:
            return
        step = next(s for s in self.report.steps if s.name == "outputs")
        step.pushed = vars(transfer)
        LOG.info("pushed the outputs to the remote cache (%d bytes in %.1f s)",
                 transfer.bytes, transfer.seconds)

    def _bootloader_step(self) -> None:
        """grub.cfg in the tree, written from the host (root by UUID, DIB's
        command line); the boot code itself goes into the image file later."""
        options = bootloader.BootOptions.from_env(self.env)
        values = {k: v for k, v in self.env.items()
                  if k.startswith(("DIB_BOOTLOADER", "DIB_GRUB", "DIB_NO_TIMER"))}
        values["fstab"] = self.disk.fstab_text()
        self._internal_step("bootloader", values,
                            lambda tree: bootloader.prepare_tree(tree, self.disk.plan,
                                                                 options=options))

    def _sbom_step(self) -> None:
        """The SBOMs, read from the finished tree. A step like the others:
        a warm rebuild of an unchanged tree mounts the stored layer (the
        copies inside the image) and gets the files beside the image back
        from the cache entry, without reading the tree again."""
        config = self.config
        manifest_dir = self.env.get("DIB_MANIFEST_IMAGE_DIR") or sbom.DEFAULT_MANIFEST_DIR
        epoch = sbom.check_source_date_epoch(self.env.get("SOURCE_DATE_EPOCH"))
        elements = [(e.name, e.path) for e in self.prepared.resolution.elements]
        values = {"formats": ",".join(config.sbom), "version": __version__,
                  "code": sbom.code_identity(),
                  "image-path": config.image_name, "manifest-dir": manifest_dir,
                  "source-date-epoch": epoch or "",
                  # attribution of loose files names these elements
                  "elements": ",".join(name for name, _path in elements)}

        memo = None if config.no_cache else Path(config.cache_dir) / sbom.DIGEST_MEMO

        def action(tree: Path) -> None:
            written = sbom.write_sboms(tree, config.image_name, config.sbom,
                                       manifest_dir=manifest_dir, elements=elements,
                                       source_date_epoch=epoch, digest_memo=memo)
            LOG.info("SBOM written: %s", " ".join(str(p) for p in written))
        self._step("sbom", self.checkpoints.internal_inputs("sbom", values), action,
                   host_side=True)

    def _on_hook(self, run: HookRun) -> None:
        self.report.hooks.append(run.__dict__)

    # -- outputs and report ---------------------------------------------------

    def _outputs(self) -> list[Path]:
        started = time.monotonic()
        step = StepReport(name="outputs", key="")
        self.report.steps.append(step)
        inputs = artifacts.output_inputs(self.config, self.disk, self.checkpoints.tree_id,
                                         self.env)
        key = keys.key_for(None, "outputs", inputs)
        self._outputs_made = None
        destination = Path(self.config.image_name).parent
        produced = self.outputs_cache.restore(key, destination) if self.outputs_cache \
            else None
        step.cache = "local-hit" if produced is not None else "miss"
        if produced is None and self.outputs_cache is not None:
            produced = self._pull_outputs(key, destination, step)
        if produced is not None:
            step.cached = True
            self.output_sha256 = self.outputs_cache.sha256(key)
            files = [p for p in produced if p.is_file()]
            if self.config.provenance and any(f.name not in self.output_sha256 for f in files):
                # stored by a build that wrote no provenance: read them once
                self.output_sha256 = self._sha256(files)
                self.outputs_cache.record_sha256(key, self.output_sha256)
            LOG.info("outputs unchanged since an earlier build: %s",
                     " ".join(str(p) for p in produced))
        else:
            self._need_tree()
            with CleanupStack() as cleanup:
                tree, tree_bytes = self._output_tree(cleanup)
                produced, digests = artifacts.produce(
                    self.prepared, self.ws, tree, self.disk, self.env,
                    layers=self._layer_stamps(), bases=self.disk_bases,
                    sha256=self.config.provenance, tree_bytes=tree_bytes)
                facts = _tree_facts(tree)
            files = [p for p in produced if p.is_file()]
            if self.config.provenance:
                # Kept with the cache entry, so that a rebuild restoring
                # these files need not read them again.
                self.output_sha256 = self._sha256(files, digests)
            if self.outputs_cache:
                self.outputs_cache.store(key, files, sha256=self.output_sha256, facts=facts)
                self._outputs_made = (key, files)
        if self.config.checksum and step.cached:
            artifacts.outputs.checksums(produced, kinds=self.config.checksum)
        step.key = key
        step.seconds = time.monotonic() - started
        if self.config.explain_cache:
            LOG.info("cache: %-13s %s", "outputs", step.explanation())
        return produced

    def _pull_outputs(self, key: str, destination: Path, step: StepReport
                      ) -> list[Path] | None:
        """The finished files from the remote cache, kept in the local output
        cache and linked into place; None when the registry has none."""
        if self.remote is None or not self.remote.reads or self.outputs_cache is None:
            return None
        with tempfile.TemporaryDirectory(prefix=".pull-", dir=self.outputs_cache.root) as tmp:
            pulled = self.remote.pull_outputs(key, Path(tmp),
                                              os.path.basename(self.config.image_name))
            if pulled is None:
                if key in self.remote.damaged:
                    step.reason = "the remote cache's copy was damaged"
                elif self.remote.reads:
                    step.reason = "not in the remote cache either"
                return None
            files, record, transfer = pulled
            sha256 = record.get("sha256") if isinstance(record.get("sha256"), dict) else {}
            facts = record.get("facts") if isinstance(record.get("facts"), dict) else {}
            self.outputs_cache.store(key, files, sha256=sha256, facts=facts)
        produced = self.outputs_cache.restore(key, destination)
        if produced is not None:
            step.cache = "remote-hit"
            step.pulled = vars(transfer)
            LOG.info("pulled the outputs from the remote cache (%d bytes in %.1f s)",
                     transfer.bytes, transfer.seconds)
        return produced

    def _epoch(self) -> int | None:
        return artifacts.source_date_epoch(self.env)

    def _output_tree(self, cleanup: CleanupStack) -> tuple[Path, int | None]:
        """The tree the outputs are made from. With SOURCE_DATE_EPOCH and an
        output that copies the tree's times as they are (squashfs), every
        later mtime is clamped to it first (the layers themselves unchanged),
        and the size measured before that, since clamping copies inodes up
        into a filesystem that counts their blocks differently. Tar and the
        disk's filesystems set their times themselves, from the tree as it is."""
        epoch = self._epoch()
        if epoch is None or not artifacts.needs_clamped_tree(self.prepared):
            return self.tree.mount_readonly(cleanup), None
        tree = self.tree.mount_for_outputs(cleanup)
        tree_bytes = blockdev.tree_size(tree) if artifacts.needs_disk(self.prepared) else None
        started = time.monotonic()
        changed = reproducible.clamp_mtimes(tree, epoch)
        LOG.info("reproducible: %d mtimes clamped to SOURCE_DATE_EPOCH %d (%.1f s)",
                 changed, epoch, time.monotonic() - started)
        return tree, tree_bytes

    def _sha256(self, files: list[Path], known: Mapping[str, str] | None = None
                ) -> dict[str, str]:
        started = time.monotonic()
        known = known or {}
        found = provenance.subject_digests(files, known)
        read = [f.name for f in files if f.name not in known]
        if read:
            LOG.info("sha256 of %s in %.1f s", " ".join(read), time.monotonic() - started)
        return found

    def _provenance_step(self, produced: list[Path]) -> Path | None:
        """NAME.provenance.json: the outputs and what cleanup.d wrote beside
        them (a ramdisk's kernel and initramfs), each by its SHA-256, and
        what they were made from. The digests of outputs restored from the
        cache are the ones recorded with them; only new files are read."""
        started = time.monotonic()
        step = StepReport(name="provenance", key="")
        self.report.steps.append(step)
        files = [p for p in produced if p.is_file()]
        files += [p for p in self._step_products() if p.is_file() and p not in files]
        if not files:
            # in-toto wants at least one subject: nothing to attest
            LOG.info("provenance not written: the build produced no files")
            return None
        known = {**self.digests_ahead.known(files), **self.output_sha256}
        subjects = provenance.subject_digests(files, known)
        packages, distro = self._packages()
        facts = provenance.BuildFacts(
            config=self.config, subjects=subjects, env=self.env,
            elements=[(e.name, e.path) for e in self.prepared.resolution.elements],
            packages=packages, distro=distro, dib_version=__version__, host_arch=host_arch(),
            build_id=self.ws.root.name, started=self.started_on, finished=time.time(),
            source_date_epoch=sbom.check_source_date_epoch(self.env.get("SOURCE_DATE_EPOCH")))
        written = provenance.write_provenance(
            provenance.provenance_path(self.config.image_name), facts)
        step.seconds = time.monotonic() - started
        LOG.info("provenance written: %s (%d subjects, %.2f s)", written, len(subjects),
                 step.seconds)
        return written

    def _packages(self) -> tuple[list[DebPackage], Distro]:
        """The finished tree's packages, for the provenance: as recorded with
        the outputs when they were made (restored outputs need no tree, so
        their layers may never have been fetched), else read from the tree."""
        outputs = next((s for s in reversed(self.report.steps) if s.name == "outputs"), None)
        if self.outputs_cache is not None and outputs is not None:
            recorded = _packages_of(self.outputs_cache.facts(outputs.key))
            if recorded is not None:
                return recorded
        self._need_tree()
        with CleanupStack() as cleanup:
            return provenance.read_packages(self.tree.mount_readonly(cleanup))

    def _step_products(self) -> list[Path]:
        """What the build's phases wrote beside the image, or got back from
        the cache (dib's own SBOM step aside)."""
        phases = {phase.name for phase in PHASES}
        found: list[Path] = []
        for step in self.report.steps:
            if step.name in phases:
                found.extend(self.checkpoints.products.get(step.key, []))
        return found

    def _layer_stamps(self) -> artifacts.Layers:
        return [(self.store.stamp(layer) if self.store else None, layer)
                for layer in self.tree.layers]

    def _write_report(self) -> None:
        text = self.report.table()
        for line in text.splitlines():
            LOG.info("%s", line)
        if self.config.json_report:
            Path(self.config.json_report).write_text(
                json.dumps(self.report.as_dict(), indent=1) + "\n")


def _remote_cache(config: BuildConfig) -> RemoteCache | None:
    if not config.cache_remote:
        return None
    return from_settings(config.cache_remote, mode=config.cache_remote_mode,
                         insecure=config.cache_remote_insecure, environ=config.environ)


def _cache_word(hit: bool, pulled: object) -> str:
    if not hit:
        return "miss"
    return "remote-hit" if pulled is not None else "local-hit"


def _tree_facts(tree: Path) -> dict[str, Any]:
    """What the provenance reads from the finished tree, kept with the outputs."""
    packages, distro = provenance.read_packages(tree)
    return {"packages": [asdict(p) for p in packages], "distro": asdict(distro)}


def _packages_of(facts: Mapping[str, Any]) -> tuple[list[DebPackage], Distro] | None:
    """The packages and distribution ``_tree_facts`` recorded; None when
    they are missing or not in that shape (then the tree is read)."""
    try:
        return ([DebPackage(**p) for p in facts["packages"]], Distro(**facts["distro"]))
    except (KeyError, TypeError):
        return None


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(source, destination, symlinks=True)


def _settle(tree: Path) -> None:
    removed = reproducible.settle_tree(tree)
    LOG.info("reproducible: removed %s", " ".join(removed) if removed else "nothing")


def _check_root_made(tree: Path) -> None:
    """DIB's rule: root.d must have created the tree."""
    made = [p.name for p in tree.iterdir() if p.name not in ("tmp", "lost+found")]
    if not made:
        raise DibError("root.d finished but created no root tree",
                       hint="the build needs an operating system element (for example "
                            "debian-minimal) whose root.d hook creates the tree")
