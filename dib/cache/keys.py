"""Cache keys: each step's key is chained from the previous step's key and
every input that step reads, so a change reruns that step and all after it."""
from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from dib import __version__
from dib.cache.store import walk_sorted
from dib.config.settings import SETTINGS
from dib.elements.phases import HOOK_PHASES
from dib.runtime.hooktree import is_merged

# Variables that never change what a step writes into the tree: those of
# the settings that say so, and what the build itself sets for its hooks.
VOLATILE_VARS = {s.env for s in SETTINGS if s.env and not s.affects_tree} | {
    "DIB_ARGS", "DIB_ENV", "DIB_RUN_PARTS_EVENTS", "DIB_LOCKFILES", "DIB_PYTHON_EXEC",
    "DIB_BLOCK_DEVICE_PARAMS_YAML"}
# Volatile for most hooks, but the manifests element writes them into the
# image and beside it: they count for a phase whose hooks name them.
RECORDED_VARS = ("DIB_ARGS", "DIB_ENV")
# Non-DIB_ variables that hooks commonly read. SOURCE_DATE_EPOCH is read by
# the tools hooks run (mmdebstrap, initramfs-tools, ...), not by the hooks
# themselves: a tree made without it is not the tree a reproducible build wants.
TREE_VARS = ("ARCH", "DISTRO_NAME", "DIB_RELEASE", "FS_TYPE",
             "DIB_INIT_SYSTEM", "LANG", "SOURCE_DATE_EPOCH")
MARK_PREFIX = "# dib-cache:"
UNCACHEABLE_MARK = MARK_PREFIX + " never"
READS_MARK = MARK_PREFIX + " reads"
# The image name is an input only of phases whose hooks mention IMAGE_NAME
# (manifests are named after the image): other phases are shared between
# builds of differently named images.
IMAGE_NAME_INPUT = "setting:image-name"
# The element list (IMAGE_ELEMENT) is an input of extra-data.d, where elements'
# own directories are read, and of phases whose hooks mention it; each
# element's data files are inputs of the same phases.
ELEMENTS_INPUT = "setting:elements"
# A rootless build's uid and gid maps (dib.runtime.mounts.id_mapping); root
# builds have none.
IDS_INPUT = "host:id-mapping"
ELEMENT_WORDS = ("IMAGE_ELEMENT", "get_image_element_array")
READS_ELEMENT_DIRS = ("extra-data.d",)
# Host-side phases whose hooks may also change TMP_HOOKS_PATH (extra-data.d
# adds install-type links there, for instance).
ROOT_ONLY_DIRS = ("root.d",)
# Hooks directories and what is keyed on its own; every other entry of the
# hooks tree is element data that hooks read, ".d" directories included
# (init.d, binary-deps.d, udev.d: a ramdisk builder reads them).
PHASE_DIRS = {phase.directory for phase in HOOK_PHASES}
NOT_DATA = {"bin", "environment.d"}


def key_for(parent: str | None, step: str, inputs: Mapping[str, str]) -> str:
    blob = json.dumps({"parent": parent, "step": step, "inputs": dict(inputs),
                       "version": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def file_digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    digest = hashlib.sha256()
    digest.update(oct(path.stat().st_mode & 0o7777).encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_inputs(root: Path, prefix: str) -> dict[str, str]:
    """One input per file under ``root``, named by its path."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    if root.is_file():
        return {prefix: file_digest(root)}
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]):
            path = Path(directory) / name
            out[f"{prefix}/{path.relative_to(root)}"] = file_digest(path)
    return out


def directory_digest(root: Path) -> str:
    """One SHA-256 for everything under ``root``, made of the very per-file
    digests (``tree_inputs``) the phase keys hold: one line
    ``PATH\0DIGEST\n`` per file, PATH relative to ``root``, in sorted order.
    The provenance names each element directory by it. Python's bytecode
    caches are left out: running an element's tests must not change it."""
    digest = hashlib.sha256()
    for name, value in sorted(tree_inputs(Path(root), ".").items()):
        relative = name[2:]
        if "__pycache__" not in relative.split("/"):
            digest.update(f"{relative}\0{value}\n".encode())
    return digest.hexdigest()


def element_data_inputs(elements: Iterable[tuple[str, Path]]) -> dict[str, str]:
    """Each element's files other than its hooks and its metadata."""
    out: dict[str, str] = {}
    for name, path in elements:
        for entry in sorted(Path(path).iterdir()):
            if not is_merged(entry.name) or entry.name.endswith(".d"):
                continue
            out.update(tree_inputs(entry, f"element:{name}/{entry.name}"))
    return out


def settings_inputs(env: Mapping[str, str], *, image_name: str,
                    packages: Iterable[str] = ()) -> dict[str, str]:
    # Where the image goes is not what goes into it (DIB_MANIFEST_SAVE_DIR is
    # derived from IMAGE_NAME, for instance).
    out = {f"env:{k}": v.replace(image_name, "$IMAGE_NAME") for k, v in env.items()
           if k.startswith("DIB_") and k not in VOLATILE_VARS}
    out.update({f"env:{k}": env[k] for k in TREE_VARS if k in env})
    out[IMAGE_NAME_INPUT] = os.path.basename(image_name)
    out[ELEMENTS_INPUT] = env.get("IMAGE_ELEMENT", "")
    return out


def mentions(place: Path, word: str) -> bool:
    """Whether ``place``, or any file under it, contains ``word``."""
    needle = word.encode()
    for path in place.rglob("*") if place.is_dir() else [place]:
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    return True
            except OSError:
                continue
    return False


def _texts(paths: Iterable[Path]) -> bytes:
    chunks = []
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        for path in files:
            if path.is_file():
                try:
                    chunks.append(path.read_bytes())
                except OSError:
                    continue
    return b"\n".join(chunks)


def helpers_named_by(hooks_dir: Path, sources: list[Path]) -> list[str]:
    """The helpers in bin/ that these files name, and those they name in turn;
    dib-run-parts always (it runs every phase)."""
    bin_dir = hooks_dir / "bin"
    available = sorted(p.name for p in bin_dir.iterdir()) if bin_dir.is_dir() else []
    used = {"dib-run-parts"} & set(available)
    text = _texts(sources)
    pending = [n for n in available if n.encode() in text]
    while pending:
        name = pending.pop()
        if name in used:
            continue
        used.add(name)
        inner = _texts([bin_dir / name])
        pending.extend(n for n in available if n not in used and n.encode() in inner)
    return sorted(used)


def _marks(path: Path) -> list[str]:
    """The ``# dib-cache: ...`` lines in the first 4 KiB of a hook."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096).decode(errors="replace")
    except OSError:
        return []
    return [line.strip() for line in head.splitlines()
            if line.strip().startswith(MARK_PREFIX)]


def uncacheable_hooks(directory: Path, hooks: Iterable[str] | None = None) -> list[str]:
    """Hooks that declare ``# dib-cache: never`` in their first lines (of
    ``hooks`` when given, else of the whole directory)."""
    if not directory.is_dir():
        return []
    paths = sorted(directory.iterdir()) if hooks is None else [directory / h for h in hooks]
    return [path.name for path in paths
            if path.is_file() and UNCACHEABLE_MARK in _marks(path)]


def declared_reads(hook: Path) -> list[str] | None:
    """What a hook declares it reads of the hooks tree, as paths or glob
    patterns under it (``# dib-cache: reads package-installs.json pkg-map``),
    or None when it declares nothing. A pattern that leaves the tree makes
    the declaration void: such a hook is keyed like any other."""
    for mark in _marks(hook):
        if mark == READS_MARK or mark.startswith(READS_MARK + " "):
            patterns = mark[len(READS_MARK):].split()
            if any(p.startswith("/") or ".." in p.split("/") for p in patterns):
                return None
            return patterns
    return None


@dataclass(frozen=True)
class Segment:
    """Hooks of one phase that make one cache step, in run order. A
    ``declared`` segment is keyed on what its hooks declare they read; the
    rest of a phase, on everything the phase may read."""
    hooks: tuple[str, ...]
    declared: bool
    through: str | None = None   # run the phase's hooks up to this one
    after: str | None = None     # run the phase's hooks after this one


def phase_segments(directory: Path, order: list[str]) -> list[Segment]:
    """The steps a phase runs as: one, or the longest run of hooks from its
    start that all declare what they read followed by the rest, so that
    adding a hook or a data file that the first hooks do not read still
    reuses their work (debian's package installs, for one)."""
    declared = 0
    while declared < len(order) and declared_reads(directory / order[declared]) is not None:
        declared += 1
    if declared in (0, len(order)):
        return [Segment(tuple(order), declared=declared > 0)]
    last = order[declared - 1]
    return [Segment(tuple(order[:declared]), declared=True, through=last),
            Segment(tuple(order[declared:]), declared=False, after=last)]


VARIABLE = re.compile(rb"\bDIB_[A-Za-z0-9_]+")


def variables_named_in(*directories: Path) -> set[str]:
    """Every DIB_* name that appears in the files under these directories."""
    names: set[str] = set()
    for directory in directories:
        paths = directory.rglob("*") if directory.is_dir() else [directory]
        for path in paths:
            if path.is_file():
                try:
                    names.update(m.decode() for m in VARIABLE.findall(path.read_bytes()))
                except OSError:
                    continue
    return names


def phase_inputs(hooks_dir: Path, phase_dir: str, settings: Mapping[str, str],
                 element_data: Mapping[str, str] | None = None, *,
                 environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a phase reads: its own hooks, environment.d, the helpers, and for
    every phase after root.d the elements' data (static/, pkg-map, ...).

    Of the DIB_* variables only those named in the phase's hooks, in
    environment.d, in the helpers or (after root.d) in the elements' other
    files, which hooks may source, count: changing DIB_DEV_USER_PASSWORD
    reruns the phase that uses it, not the bootstrap.

    The bootstrap (root.d) is keyed on the values its hooks read, with
    ``environment`` (the build's environment, environment.d sourced) giving
    them, instead of on environment.d's text: an element whose environment.d
    sets only what later phases read shares the bootstrap of builds without it.
    """
    if phase_dir in ROOT_ONLY_DIRS:
        return _bootstrap_inputs(hooks_dir, phase_dir, settings, environment)
    data = [entry for entry in sorted(hooks_dir.iterdir())
            if entry.name not in NOT_DATA and entry.name not in PHASE_DIRS]
    named = variables_named_in(hooks_dir / phase_dir, hooks_dir / "environment.d",
                               hooks_dir / "bin", *data)
    inputs = _named_settings(settings, named)
    if not mentions(hooks_dir / phase_dir, "IMAGE_NAME"):
        inputs.pop(IMAGE_NAME_INPUT, None)
    reads_elements = phase_dir in READS_ELEMENT_DIRS or any(
        mentions(hooks_dir / d, word) for d in (phase_dir, "environment.d")
        for word in ELEMENT_WORDS)
    if reads_elements:
        inputs.update(element_data or {})
    else:
        inputs.pop(ELEMENTS_INPUT, None)
    inputs.update(tree_inputs(hooks_dir / phase_dir, phase_dir))
    inputs.update(tree_inputs(hooks_dir / "environment.d", "environment.d"))
    inputs.update(tree_inputs(hooks_dir / "bin", "bin"))
    for entry in data:
        inputs.update(tree_inputs(entry, entry.name))
    _mark_uncacheable(inputs, hooks_dir, phase_dir)
    return inputs


def _bootstrap_inputs(hooks_dir: Path, phase_dir: str, settings: Mapping[str, str],
                      environment: Mapping[str, str] | None) -> dict[str, str]:
    """root.d's hooks, the helpers they name and DIB's library if they source
    it, and the values of the variables those name. Elements' bin/ files reach the image
    later (install-bin), so only the helpers root.d names key it.

    Without ``environment`` (a caller that has not sourced environment.d)
    environment.d's text stands in for the values it sets."""
    inputs = _named_inputs(hooks_dir, phase_dir, [hooks_dir / phase_dir], settings,
                           environment)
    _mark_uncacheable(inputs, hooks_dir, phase_dir)
    return inputs


def declared_inputs(hooks_dir: Path, phase_dir: str, segment: Segment,
                    settings: Mapping[str, str], environment: Mapping[str, str]
                    ) -> dict[str, str]:
    """What a declared segment reads: its hooks, the helpers they name, the
    values of the variables those name, and the parts of the hooks tree the
    hooks declare. Not environment.d's text, the element list or the other
    elements' data: a build that differs only there reuses the segment."""
    paths = [hooks_dir / phase_dir / hook for hook in segment.hooks]
    inputs = _named_inputs(hooks_dir, phase_dir, paths, settings, environment)
    for hook in segment.hooks:
        for pattern in declared_reads(hooks_dir / phase_dir / hook) or []:
            for match in sorted(hooks_dir.glob(pattern)):
                inputs.update(tree_inputs(match, str(match.relative_to(hooks_dir))))
    never = uncacheable_hooks(hooks_dir / phase_dir, segment.hooks)
    if never:
        _mark_never(inputs, phase_dir, never)
    return inputs


def _named_inputs(hooks_dir: Path, phase_dir: str, hooks: list[Path],
                  settings: Mapping[str, str], environment: Mapping[str, str] | None
                  ) -> dict[str, str]:
    """``hooks`` (files or a directory), the helpers they name, DIB's library
    if they source it, and the values of the variables all those name."""
    helpers = helpers_named_by(hooks_dir, hooks)
    sources = [*hooks, *(hooks_dir / "bin" / name for name in helpers)]
    if any(mentions(hook, "_LIB") for hook in hooks):
        sources.append(hooks_dir / "lib")
    if environment is None:
        sources.append(hooks_dir / "environment.d")
    inputs = _named_settings(settings, variables_named_in(*sources))
    if not any(mentions(hook, "IMAGE_NAME") for hook in hooks):
        inputs.pop(IMAGE_NAME_INPUT, None)
    if not any(mentions(hook, word) for hook in hooks for word in ELEMENT_WORDS):
        inputs.pop(ELEMENTS_INPUT, None)
    if environment is None:
        inputs.update(tree_inputs(hooks_dir / "environment.d", "environment.d"))
    else:
        inputs.update(_named_values(environment, sources))
    for hook in hooks:
        label = phase_dir if hook.is_dir() else f"{phase_dir}/{hook.name}"
        inputs.update(tree_inputs(hook, label))
    for name in helpers:
        inputs.update(tree_inputs(hooks_dir / "bin" / name, f"bin/{name}"))
    return inputs


def _named_settings(settings: Mapping[str, str], named: set[str]) -> dict[str, str]:
    return {k: v for k, v in settings.items()
            if not k.startswith("env:DIB_") or k[4:] in named or k[4:] in TREE_VARS}


WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
FUNCTION_PREFIX, FUNCTION_SUFFIX = "BASH_FUNC_", "%%"
# Where the build itself is: written as these names, so that the same
# bootstrap in another workspace or for another image has the same key.
BUILD_PATHS = ("TMP_BUILD_DIR", "IMAGE_NAME")
# What bash itself sets while environment.d is sourced, not what a build gives.
SHELL_OWN = {"_", "PWD", "OLDPWD", "SHLVL"}


def _named_values(environment: Mapping[str, str], sources: list[Path]) -> dict[str, str]:
    """The exported variables and functions (other than the settings') that
    ``sources`` name: all a hook can see of environment.d. Each by the digest
    of its value, as a cache entry records its inputs and may be pushed to a
    registry: the caller's environment (a proxy URL with a password in it)
    must not travel with it."""
    words = {m.decode() for m in WORD.findall(_texts(sources))}
    places = [(environment[n], f"${n}") for n in BUILD_PATHS if environment.get(n)]
    out = {}
    for name, value in environment.items():
        if name.startswith("DIB_") or name in TREE_VARS or name in SHELL_OWN:
            continue   # the settings' own inputs, or the shell's
        word = name
        if name.startswith(FUNCTION_PREFIX) and name.endswith(FUNCTION_SUFFIX):
            word = name[len(FUNCTION_PREFIX):-len(FUNCTION_SUFFIX)]
        if word in words:
            for path, placeholder in places:
                value = value.replace(path, placeholder)
            out[f"env:{name}"] = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return out


def _mark_uncacheable(inputs: dict[str, str], hooks_dir: Path, phase_dir: str) -> None:
    never = uncacheable_hooks(hooks_dir / phase_dir)
    if never:
        _mark_never(inputs, phase_dir, never)


def _mark_never(inputs: dict[str, str], phase_dir: str, never: list[str]) -> None:
    inputs["uncacheable"] = (f"{phase_dir}/{', '.join(never)} marked "
                             f"'{UNCACHEABLE_MARK}'|{uuid.uuid4()}")


def changed_inputs(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    names = sorted(set(old) | set(new))
    return [n for n in names if old.get(n) != new.get(n)]


def layer_identity(layer: Path, limit: int = 64 << 20) -> str | None:
    """A digest of what a layer holds (names, modes, owners, contents, links,
    xattrs; not times), or None when the layer is too big to be worth reading.

    Two runs of a step that write the same files give the same identity, so
    the steps after it can still be reused (extra-data.d rerun for a new
    element list, say, usually copies the same files)."""
    digest = hashlib.sha256()
    total = 0
    for rel, path, st in walk_sorted(layer):
        extra = ""
        if os.path.islink(path):
            extra = os.readlink(path)
        elif os.path.isfile(path):
            total += st.st_size
            if total > limit:
                return None
            extra = file_digest(Path(path))
        try:
            attrs = sorted((a, os.getxattr(path, a, follow_symlinks=False))
                           for a in os.listxattr(path, follow_symlinks=False))
        except OSError:
            attrs = []
        digest.update(f"{rel}\0{st.st_mode}\0{st.st_uid}\0{st.st_gid}\0{st.st_rdev}"
                      f"\0{extra}\0{attrs}\n".encode())
    return "content:" + digest.hexdigest()


def describe_change(name: str, old: Mapping[str, str], new: Mapping[str, str]) -> str:
    if name == IDS_INPUT:
        return _describe_ids(old.get(name), new.get(name))
    if name == "uncacheable":
        return new.get(name, "").split("|")[0]
    if name.startswith("env:"):
        var = name[4:]
        return f"variable {var} changed ({old.get(name, '<unset>')!r} → " \
               f"{new.get(name, '<unset>')!r})"
    if name == ELEMENTS_INPUT:
        return "the element list changed"
    if name.startswith("archive:"):
        if name not in old:
            return f"the entry does not record what apt source {name[8:]} held"
        return f"the packages of apt source {name[8:]} changed in the archive"
    if name.startswith("setting:"):
        return f"setting {name[8:]} changed"
    if name not in old:
        return f"file {name} was added"
    if name not in new:
        return f"file {name} was removed"
    return f"file {name} changed"


def _describe_ids(old: str | None, new: str | None) -> str:
    if old is None:
        return f"the entry was built as root, this build runs in a user namespace ({new})"
    if new is None:
        return f"the entry was built in a user namespace ({old}), this build runs as root"
    return f"the entry was built with another id mapping ({old}; now {new})"
