"""The build's products: the block-device layout, the disk, the bootloader and
every output type, checked up front and produced at the end."""
from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from dib import blockdev, bootloader, outputs, sbom
from dib.cache import keys
from dib.cache.disks import DiskBases
from dib.config.build import BuildConfig
from dib.config.hostapt import host_mirrors
from dib.pipeline.prepare import Prepared
from dib.runtime import devnodes
from dib.runtime.mounts import in_user_namespace
from dib.runtime.tree import layer_paths
from dib.runtime.workspace import Workspace

LOG = logging.getLogger("dib.build")
MiB = 1 << 20


NO_FINAL_IMAGE = "no-final-image"


def final_image_wanted(prepared: Prepared) -> bool:
    """DIB makes no disk image for ramdisk builds, nor when no-final-image is
    among the elements: their own hooks write what they produce."""
    return not prepared.config.ramdisk and NO_FINAL_IMAGE not in prepared.resolution


def selected_outputs(prepared: Prepared) -> list[outputs.Output]:
    """The -t types as plugins; an unknown type or a docker type without a
    target fails here, before any work. Without a final image only the
    types made from the tree remain (tar, squashfs, docker), as in DIB."""
    config = prepared.config
    selected = outputs.validate_types(config.image_types, docker_target=config.docker_target)
    if final_image_wanted(prepared):
        return selected
    return [o for o in selected if not o.needs_disk]


def needs_clamped_tree(prepared: Prepared) -> bool:
    """With SOURCE_DATE_EPOCH: whether an output copies the tree's mtimes as
    they are, and so must be made from a tree clamped first."""
    return any(output.copies_tree_times for output in selected_outputs(prepared))


def needs_disk(prepared: Prepared) -> bool:
    return outputs.needs_disk(selected_outputs(prepared))


def check_outputs(prepared: Prepared) -> None:
    selected_outputs(prepared)


def disk_artifacts(prepared: Prepared, *, rootless: bool = False) -> "DiskArtifacts":
    """The build's block-device layout, read and checked on first use (the
    preflight, which says whether the build runs without root) and kept on
    ``prepared``: one build reads its YAML once."""
    if prepared.disk is None:
        prepared.disk = DiskArtifacts.load(prepared, rootless=rootless)
    return prepared.disk


def check_block_device(prepared: Prepared, *, rootless: bool = False) -> None:
    disk_artifacts(prepared, rootless=rootless)


def required_tools(prepared: Prepared) -> list[tuple[str, str]]:
    tools: list[tuple[str, str]] = []
    for output in selected_outputs(prepared):
        tools.extend(output.tools())
    disk = disk_artifacts(prepared)
    if disk.config is not None:
        tools.extend(blockdev.required_tools(disk.config))
        if disk.wants_bootloader:
            tools.extend(bootloader.required_tools())
    return tools


def default_mirrors(environ: Mapping[str, str]) -> dict[str, str]:
    """Mirrors default to the host's apt sources; DIB_* variables override them."""
    found = host_mirrors()
    out = {}
    if not environ.get("DIB_DISTRIBUTION_MIRROR") and found.mirror:
        out["DIB_DISTRIBUTION_MIRROR"] = found.mirror
    if not environ.get("DIB_DEBIAN_SECURITY_MIRROR") and found.security:
        out["DIB_DEBIAN_SECURITY_MIRROR"] = found.security
    return out


def _block_device_source(prepared: Prepared) -> tuple[Any, str]:
    """DIB's choice: DIB_BLOCK_DEVICE_CONFIG, else the first element with
    block-device-ARCH.yaml, else block-device-default.yaml, else the built-in."""
    config = prepared.config
    if config.block_device_config:
        return config.block_device_config, "DIB_BLOCK_DEVICE_CONFIG"
    for wanted in (config.arch, "default"):
        for element in prepared.resolution.elements:
            path = element.block_device_files.get(wanted)
            if path is not None:
                return path, f"element '{element.name}' ({path.name})"
    return None, "the built-in default layout"


@dataclass
class DiskArtifacts:
    config: Any            # BlockDeviceConfig, or None when no disk output was asked for
    source: str
    wants_bootloader: bool

    @classmethod
    def load(cls, prepared: Prepared, *, rootless: bool = False) -> "DiskArtifacts":
        config = prepared.config
        if not needs_disk(prepared):
            return cls(None, "", False)
        source, where = _block_device_source(prepared)
        origin = f"block-device config from {where}"
        layout = blockdev.load_config(source, root_label=config.root_label,
                                      fs_type=config.fs_type,
                                      mkfs_options=config.mkfs_options or None,
                                      origin=origin)
        blockdev.preflight(layout, rootless=rootless, origin=origin)
        layout.assign_ids(_seed(config, prepared))
        return cls(layout, where, "bootloader" in prepared.resolution)

    @property
    def plan(self) -> Any:
        """The layout before the tree is sized: which filesystem is the root,
        which holds /boot, where the ESP is (blockdev.DiskPlan, unsized)."""
        return blockdev.unsized_plan(self.config)

    def hook_environment(self) -> dict[str, str]:
        return self.plan.hook_environment() if self.config is not None else {}

    def fstab_text(self) -> str:
        return blockdev.fstab_text(self.config)

    def write_fstab(self, tree: Path) -> None:
        blockdev.write_fstab(self.config, tree)


def _seed(config: BuildConfig, prepared: Prepared) -> str:
    """UUIDs are derived from the image name and elements: the same build
    gives the same filesystem UUIDs (DIB_BLOCK_DEVICE_SEED overrides)."""
    return config.environ.get("DIB_BLOCK_DEVICE_SEED") or \
        f"{os.path.basename(config.image_name)}:{' '.join(prepared.resolution.names)}"


def output_inputs(config: BuildConfig, disk: DiskArtifacts, tree_id: str | None,
                  env: Mapping[str, str]) -> dict[str, str]:
    """Everything the finished files depend on besides the tree itself."""
    values = {"tree": str(tree_id), "types": ",".join(config.image_types),
              "compress": str(not config.uncompressed),
              "qemu-img-options": config.qemu_img_options or "",
              "docker-target": config.docker_target or "", "arch": config.arch,
              "name": os.path.basename(config.image_name),
              "image-size": str(config.image_size), "extra-size": str(config.image_extra_size),
              "epoch": env.get("SOURCE_DATE_EPOCH", "")}
    if values["epoch"]:
        # how the outputs get their times: FAT entries all take the epoch
        values["times"] = "2"
    if in_user_namespace():
        # a rootless build's outputs add the /dev entries its tree lacks
        values["dev-nodes"] = devnodes.signature()
    if disk.config is not None:
        values["layout"] = json.dumps(disk.config.raw, sort_keys=True, default=str)
        values["fstab"] = disk.fstab_text()
        values.update({k: v for k, v in env.items()
                       if k.startswith(("DIB_BOOTLOADER", "DIB_GRUB", "DIB_NO_TIMER"))})
    return values


#: a rebuild that changed more paths than this makes its filesystems anew
PATCH_LIMIT = 5000

#: (cache stamp or None, layer directory) for each layer of the tree, bottom first
Layers = list[tuple[Optional[str], Path]]


def produce(prepared: Prepared, workspace: Workspace, tree: Path, disk: DiskArtifacts,
            env: Mapping[str, str], layers: Layers | None = None,
            bases: DiskBases | None = None, sha256: bool = False,
            tree_bytes: int | None = None) -> tuple[list[Path], dict[str, str]]:
    """Every requested output; with ``sha256``, also file name → SHA-256 of
    each file written, read while the other outputs are still being made.
    ``tree_bytes``: the tree's size when it was measured before the tree
    was changed for the outputs (see ``Builder._output_tree``)."""
    config = prepared.config
    selected = selected_outputs(prepared)
    raw = record = None
    epoch = source_date_epoch(env)
    if epoch is not None:
        bases = None   # in-place updates would stamp today's times into the image
    slot = disk_slot(config, disk, env)
    dev_nodes = rootless_dev_nodes(tree, epoch)
    if outputs.needs_disk(selected):
        raw, record = _build_disk(config, workspace, tree, disk, env, layers or [],
                                  bases.take(slot, _raw_path(workspace)) if bases else None,
                                  tree_bytes, dev_nodes, epoch)
    context = outputs.OutputContext.from_env(
        Path(config.image_name), env, tree=tree, raw=raw, compress=not config.uncompressed,
        qemu_img_options=config.qemu_img_options or None,
        docker_target=config.docker_target, move_raw=True, arch=config.arch,
        dev_nodes=dev_nodes)
    produced, digests = write_outputs(selected, context, sha256)
    if config.checksum:
        outputs.checksums(produced, kinds=config.checksum)
    if bases is not None and raw is not None and raw.exists() and record is not None:
        bases.put(slot, raw, record)
    return produced, digests


def source_date_epoch(env: Mapping[str, str]) -> int | None:
    """SOURCE_DATE_EPOCH of the hooks' environment (the caller's or an
    element's), checked as the SBOM checks it; None when it is not set."""
    value = sbom.check_source_date_epoch(env.get("SOURCE_DATE_EPOCH"))
    return int(value) if value is not None else None


def rootless_dev_nodes(tree: Path, epoch: int | None = None) -> tuple[devnodes.DevEntry, ...]:
    """The /dev entries a root bootstrap would have made that the tree lacks,
    in a build without root (mknod is refused there); none as root, whose
    outputs are the tree as it is. ``epoch``: SOURCE_DATE_EPOCH, their
    latest time."""
    if not in_user_namespace():
        return ()
    found = devnodes.missing(tree, epoch=epoch)
    if found:
        LOG.info("outputs: adding /dev entries mknod could not make: %s",
                 " ".join(e.node.name for e in found))
    return found


def write_outputs(selected: list[outputs.Output], context: outputs.OutputContext,
                   sha256: bool) -> tuple[list[Path], dict[str, str]]:
    """The outputs side by side, each one a tool's process or two: qemu-img
    converting in order (which a reproducible qcow2 needs) keeps one core
    busy and the others can use the rest. Raw comes last, because it may
    move the disk file the others read; its digest is read from the disk
    file meanwhile, since the move keeps the bytes."""
    last = [o for o in selected if o.name == "raw"]
    first = [o for o in selected if o.name != "raw"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(first) + 1) as pool:
        raw_digest = None
        if sha256 and last and context.raw is not None:
            raw_digest = pool.submit(outputs.file_digest, context.raw)
        running = [pool.submit(_write_output, o, context, sha256) for o in first]
        results = [future.result() for future in running]
        results += [_write_output(o, context, False) for o in last]
        digests = {name: value for _paths, found in results for name, value in found.items()}
        if raw_digest is not None:
            digests[last[0].output_path(context).name] = raw_digest.result()
    return [path for paths, _found in results for path in paths], digests


def _write_output(output: outputs.Output, context: outputs.OutputContext,
                  sha256: bool) -> tuple[list[Path], dict[str, str]]:
    started = time.monotonic()
    paths = output.produce(context)
    LOG.info("wrote %s (%.1f s)", " ".join(map(str, paths)), time.monotonic() - started)
    digests = {p.name: outputs.file_digest(p) for p in paths if sha256 and p.is_file()}
    return paths, digests


def disk_slot(config: BuildConfig, disk: DiskArtifacts, env: Mapping[str, str]) -> str:
    """What a kept disk must share with this build to be updated in place:
    everything the disk depends on except the tree and the output formats."""
    values = output_inputs(config, disk, None, env)
    for name in ("tree", "types", "compress", "qemu-img-options", "docker-target"):
        values.pop(name)
    return keys.key_for(None, "disk", values)


def requested_sizes(config: BuildConfig) -> tuple[int | None, int | None]:
    """--image-size and --image-extra-size in bytes, as DIB reads them:
    GiB (rounded up to 64 KiB) and MiB."""
    size = blockdev.parse_image_size_gb(config.image_size) if config.image_size else None
    extra = config.image_extra_size * MiB if config.image_extra_size is not None else None
    return size, extra


def _raw_path(workspace: Workspace) -> Path:
    return workspace.image_dir / "image0.raw"


def _build_disk(config: BuildConfig, workspace: Workspace, tree: Path, disk: DiskArtifacts,
                env: Mapping[str, str], layers: Layers,
                kept: dict[str, Any] | None, tree_bytes: int | None = None,
                dev_nodes: tuple[devnodes.DevEntry, ...] = (), epoch: int | None = None
                ) -> tuple[Path, dict[str, Any]]:
    """The raw disk: the kept disk of an earlier build updated in place when
    that is possible, else made from the tree (``epoch``: the build's
    SOURCE_DATE_EPOCH). Returns it and its record."""
    started = time.monotonic()
    size, extra = requested_sizes(config)
    if tree_bytes is None:
        tree_bytes = blockdev.tree_size(tree)
    plan = blockdev.plan_disk(disk.config, tree_bytes=tree_bytes, image_size=size,
                              extra_size=extra)
    raw = _raw_path(workspace)
    how = None
    if kept is not None:
        try:
            plan = _kept_plan(kept, plan, disk, tree_bytes, explicit_size=size is not None,
                              extra_size=extra)
            paths, record = changed_paths(kept["layers"], layers)
            blockdev.patch_disk(plan, tree, raw, paths, dev_nodes)
            how = f"updated in place ({len(paths)} changed paths)"
        except blockdev.CannotPatch as exc:
            LOG.info("disk: making it anew rather than updating the kept one: %s", exc)
    if how is None:
        raw.unlink(missing_ok=True)
        blockdev.build_disk(plan, tree, raw, dev_nodes, epoch=epoch)
        record = [[stamp, layer_paths(layer, PATCH_LIMIT)] for stamp, layer in layers]
        how = "assembled"
    if disk.wants_bootloader:
        bootloader.install(raw, plan, options=bootloader.BootOptions.from_env(env))
    LOG.info("disk image %s in %.1f s", how, time.monotonic() - started)
    return raw, {"plan": blockdev.plan_signature(plan), "size": plan.size, "layers": record}


def _kept_plan(kept: Mapping[str, Any], plan: Any, disk: DiskArtifacts, tree_bytes: int,
               explicit_size: bool, extra_size: int | None) -> Any:
    """This build's plan if the kept disk has it. A default-sized disk keeps
    its earlier size while the tree needs between 91% and 105% of it."""
    if blockdev.plan_signature(plan) == kept["plan"]:
        return plan
    held = int(kept.get("size", 0))
    if not explicit_size and plan.size * 0.95 <= held <= plan.size * 1.10:
        plan = blockdev.plan_disk(disk.config, tree_bytes=tree_bytes, image_size=held,
                                  extra_size=extra_size)
        if blockdev.plan_signature(plan) == kept["plan"]:
            return plan
    raise blockdev.CannotPatch("the disk's layout or size changed")


def changed_paths(kept: list[list[Any]], layers: Layers) -> tuple[list[str], list[list[Any]]]:
    """Paths that may differ between the tree the kept disk was made from and
    this one: everything in the layers after the ones both share. Returns
    them and this tree's record of layers."""
    shared = 0
    while shared < min(len(kept), len(layers)) and layers[shared][0] is not None \
            and kept[shared][0] == layers[shared][0]:
        shared += 1
    changed: set[str] = set()
    for _stamp, paths in kept[shared:]:
        if paths is None:
            raise blockdev.CannotPatch("a layer of the earlier tree that changed is too big")
        changed.update(paths)
    record = [list(entry) for entry in kept[:shared]]
    for stamp, layer in layers[shared:]:
        paths = layer_paths(layer, PATCH_LIMIT)
        if paths is None:
            raise blockdev.CannotPatch(f"layer {layer.name} changed too much to patch in")
        changed.update(paths)
        record.append([stamp, paths])
    if len(changed) > PATCH_LIMIT:
        raise blockdev.CannotPatch(f"{len(changed)} paths changed")
    return sorted(changed), record
