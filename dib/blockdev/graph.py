"""DIB's block-device YAML → a list of nodes → a checked ``BlockDeviceConfig``.

The YAML is a list of single-key maps; each key names a plugin (a class in
``dib.blockdev.nodes``).  Tree notation nests children under their parent (a
child's ``base`` is its parent's name and a missing ``name`` becomes
``<plugin>_<base>``); graph notation gives ``name``/``base`` explicitly; both
may be mixed.  ``partitions:`` under ``partitioning`` is a list of partitions
whose own plugin children are lifted out as nodes based on the partition.

Nodes are read in document order and a mistake does not stop the reading:
``load_config`` reports every problem of the file in one error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dib.blockdev.checks import check_graph
from dib.blockdev.config import BlockDeviceConfig
from dib.blockdev.nodes import PLUGINS, Entry, Node, Partition
from dib.blockdev.problems import Problem, Problems
from dib.errors import BlockDeviceError

#: the config DIB uses when no element supplies one: no partition table
DEFAULT_CONFIG_YAML = """\
- local_loop:
    name: image0
- mkfs:
    name: mkfs_root
    base: image0
    mount:
      mount_point: /
      fstab:
        options: defaults
        fsck-passno: 1
"""


class _Reader:
    """Walks the YAML in document order, numbering each node as it comes."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.entries: list[Entry] = []
        self.position = 0

    def _next(self) -> int:
        self.position += 1
        return self.position

    def top(self, data: list[Any]) -> list[Entry]:
        for index, item in enumerate(data, start=1):
            position = self._next()
            key = next(iter(item)) if isinstance(item, dict) and len(item) == 1 else None
            if key in PLUGINS:
                self.node(key, item[key], None, position)
            else:
                text, hint = _unreadable(item)
                self.problems.add(Problem(text, hint, f"entry #{index}", position=position))
        return self.entries

    def node(self, plugin: str, values: Any, parent: str | None, position: int) -> None:
        """Add the entry for ``plugin`` and, after it, the plugins nested in it."""
        values = {} if values is None else values
        if not isinstance(values, dict):
            name = f"{plugin}_{parent}"
            self.problems.add(Problem(f"the value of '{plugin}' must be a map, not "
                                      f"{type(values).__name__}",
                                      f"write e.g. '{plugin}:' followed by indented options",
                                      f"node '{name}' ({plugin})", position=position),
                              (name, plugin))
            return
        base = _name(values.get("base", parent))
        name = _name(values.get("name")) or f"{plugin}_{base}"
        # Read on without a name or base that is not text: what else is
        # wrong, and the nodes nested in this one, are still worth reporting.
        unreadable = tuple(k for k in ("base", "name") if _name(values.get(k)) != values.get(k))
        for key in unreadable:
            self.problems.add(Problem(f"{key} {values[key]!r} is not text",
                                      "names are text, e.g. root", f"node '{name}' ({plugin})",
                                      key, position), (name, plugin))
        entry = Entry(plugin, name, base, {}, position, unreadable=unreadable)
        self.entries.append(entry)
        nested = []
        for key, value in values.items():
            if key == "partitions" and plugin == "partitioning" and isinstance(value, list):
                nested.append((key, value))
            elif key in PLUGINS:
                nested.append((key, value))
            elif key not in ("name", "base"):
                entry.values[key] = value
        for key, value in nested:
            if key == "partitions":
                self.partitions(entry, value)
            else:
                self.node(key, value, name, self._next())

    def partitions(self, table: Entry, items: list[Any]) -> None:
        for index, item in enumerate(items, start=1):
            position = self._next()
            where = f"partition #{index} of node '{table.name}' (partitioning)"
            if not isinstance(item, dict):
                self.problems.add(Problem(
                    "is not a map", "each partitions: entry is a map with name: and size:",
                    where, position=position))
                continue
            name = item.get("name")
            if not name or not isinstance(name, str):
                # Without a name nothing can be based on it: what is nested
                # in it is not read either.
                self.problems.add(Problem(
                    "has no name" if not name else f"name {name!r} is not text",
                    "give every partition a name: (e.g. root)", where, "name", position))
                continue
            part = Entry("partition", name, table.name, {}, position)
            table.partitions.append(part)
            lifted = []
            for key, value in item.items():
                if key in PLUGINS and key not in Partition.options:
                    lifted.append((key, value))
                else:
                    part.values[key] = value
            for key, value in lifted:
                self.node(key, value, name, self._next())


def _name(value: Any) -> str | None:
    """``value`` if it can name a node."""
    return value if isinstance(value, str) else None


def _unreadable(item: Any) -> tuple[str, str]:
    """Why a top-level list item names no plugin, and what to do."""
    if not isinstance(item, dict):
        return f"{item!r} is not a map", "each list item is '- PLUGIN: {...}'"
    if len(item) != 1:
        return (f"has {len(item)} top-level keys ({', '.join(map(str, item))})",
                "each list item must have exactly one key, the plugin; indent options "
                "under it or start a new '- ' item")
    key = next(iter(item))
    return (f"unknown plugin '{key}'{PLUGINS.suggest(key)}",
            f"known plugins: {', '.join(PLUGINS.names())}")


def read_entries(data: Any, problems: Problems) -> list[Entry]:
    """The YAML's nodes in document order, tree notation flattened: each
    nested plugin becomes an entry whose base is its parent."""
    if data is None:
        data = []
    if not isinstance(data, list):
        problems.whole("the config must be a YAML list of single-key maps",
                       "start each top-level entry with '- local_loop:', '- partitioning:', "
                       "'- mkfs:' ...")
        return []
    return _Reader(problems).top(data)


def build_nodes(entries: list[Entry], problems: Problems) -> list[Node]:
    """Each entry's nodes; a name used twice is a problem of the second node."""
    seen: dict[str, Node] = {}
    for entry in entries:
        cls = PLUGINS.get(entry.plugin)
        assert cls is not None
        for node in cls.from_config(entry, problems):
            if node.name in seen:
                other = seen[node.name]
                problems.about(node.name, node.plugin, node.position)(
                    f"the name is already used by a {other.plugin} node",
                    "give one of them a different name:", key="name")
                continue
            seen[node.name] = node
    return list(seen.values())


def parse_yaml(text: str, *, source: str = "block-device config") -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BlockDeviceError(f"{source} is not valid YAML: {exc}") from None


def load_config(source: Any = None, *, root_label: str | None = None,
                fs_type: str | None = "ext4", mkfs_options: str | None = None,
                origin: str | None = None) -> BlockDeviceConfig:
    """Parse and check a block-device config; every mistake in it is reported
    at once, in one ``ConfigProblems`` error.

    ``source`` is a parsed list, YAML text, ``file://PATH`` (DIB's
    DIB_BLOCK_DEVICE_CONFIG form), a Path, or None for DIB's default config.
    ``origin`` says where it came from in messages.  The legacy params (root
    label, root fs type, mkfs options) are applied to ``mkfs_root`` before
    the checks, as DIB does.
    """
    text, described = _text(source)
    origin = origin or described
    data = source if text is None else parse_yaml(text, source=origin)
    problems = Problems()
    entries = read_entries(data, problems)
    if not entries:
        problems.raise_if_any(origin)   # nothing could be read: no graph to check
    config = BlockDeviceConfig(build_nodes(entries, problems), raw=data)
    config.apply_overrides(root_label=root_label, fs_type=fs_type, mkfs_options=mkfs_options)
    check_graph(config, problems)
    problems.raise_if_any(origin)
    return config


def _text(source: Any) -> tuple[str | None, str]:
    """The YAML text of ``source`` (None when it is parsed already) and what
    to call it in messages."""
    if source is None:
        return DEFAULT_CONFIG_YAML, "the built-in block-device config"
    if isinstance(source, str) and source.startswith("file://"):
        source = Path(source[len("file://"):])
    if isinstance(source, Path):
        return _read(source), f"block-device config {source}"
    if isinstance(source, str):
        return source, "block-device config"
    return None, "block-device config"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise BlockDeviceError(f"cannot read block-device config {path}: {exc.strerror}") \
            from None

