"""DIB's block-device YAML → a list of nodes → a checked ``BlockDeviceConfig``.

The YAML is a list of single-key maps; each key names a plugin (a class in
``dib.blockdev.nodes``).  Tree notation nests children under their parent (a
child's ``base`` is its parent's name and a missing ``name`` becomes
``<plugin>_<base>``); graph notation gives ``name``/``base`` explicitly; both
may be mixed.  ``partitions:`` under ``partitioning`` is a list of partitions
whose own plugin children are lifted out as nodes based on the partition.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dib.blockdev.checks import check_graph
from dib.blockdev.config import BlockDeviceConfig
from dib.blockdev.nodes import PLUGINS, Node, Partition
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


def _flatten(key: str, values: Any, parent: str | None, out: list[tuple[str, str, str | None,
                                                                        dict]]) -> None:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise BlockDeviceError(f"block-device config: the value of '{key}' must be a map, "
                               f"not {type(values).__name__}",
                               hint="write e.g. 'mkfs:' followed by indented options")
    base = values.get("base", parent)
    name = values.get("name") or f"{key}_{base}"
    own: dict[str, Any] = {}
    for k, v in values.items():
        if k in ("name", "base"):
            continue
        if k == "partitions" and key == "partitioning" and isinstance(v, list):
            lifted = []
            for part in v:
                if isinstance(part, dict):
                    pname = part.get("name")
                    kept = {}
                    for pk, pv in part.items():
                        if pk in PLUGINS and pk not in Partition.options:
                            _flatten(pk, pv, pname, out)
                        else:
                            kept[pk] = pv
                    lifted.append(kept)
                else:
                    lifted.append(part)
            own[k] = lifted
        elif k in PLUGINS:
            _flatten(k, v, name, out)
        else:
            own[k] = v
    out.append((key, name, base, own))


def config_to_graph(data: Any) -> list[tuple[str, str, str | None, dict]]:
    """Flatten tree notation into (plugin, name, base, options) entries."""
    if data is None:
        data = []
    if not isinstance(data, list):
        raise BlockDeviceError("block-device config must be a YAML list of single-key maps",
                               hint="start each top-level entry with '- local_loop:', "
                                    "'- partitioning:', '- mkfs:' ...")
    out: list[tuple[str, str, str | None, dict]] = []
    for position, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            raise BlockDeviceError(f"block-device config: entry #{position} ({entry!r}) is "
                                   "not a map", hint="each list item is '- PLUGIN: {...}'")
        if len(entry) != 1:
            raise BlockDeviceError(
                f"block-device config: entry #{position} has {len(entry)} top-level keys "
                f"({', '.join(map(str, entry))})",
                hint="each list item must have exactly one key, the plugin; indent "
                     "options under it or start a new '- ' item")
        key = next(iter(entry))
        if key not in PLUGINS:
            raise BlockDeviceError(
                f"block-device config: entry #{position}: unknown plugin '{key}'"
                f"{PLUGINS.suggest(key)}",
                hint=f"known plugins: {', '.join(PLUGINS.names())}")
        _flatten(key, entry[key], None, out)
    return out


def parse_yaml(text: str, *, source: str = "block-device config") -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BlockDeviceError(f"{source} is not valid YAML: {exc}") from None


def load_config(source: Any = None, *, root_label: str | None = None,
                fs_type: str | None = "ext4", mkfs_options: str | None = None
                ) -> BlockDeviceConfig:
    """Parse and validate a block-device config.

    ``source`` is a parsed list, YAML text, ``file://PATH`` (DIB's
    DIB_BLOCK_DEVICE_CONFIG form), a Path, or None for DIB's default config.
    The legacy params (root label, root fs type, mkfs options) are applied to
    ``mkfs_root`` before validation, as DIB does.
    """
    if source is None:
        data = parse_yaml(DEFAULT_CONFIG_YAML)
    elif isinstance(source, Path):
        data = parse_yaml(_read(source), source=str(source))
    elif isinstance(source, str):
        if source.startswith("file://"):
            path = Path(source[len("file://"):])
            data = parse_yaml(_read(path), source=str(path))
        else:
            data = parse_yaml(source)
    else:
        data = source
    entries = config_to_graph(data)
    nodes: list[Node] = []
    for key, name, base, values in entries:
        cls = PLUGINS.get(key)
        assert cls is not None
        nodes.extend(cls.from_config(name, base, values))
    config = BlockDeviceConfig(nodes, raw=data)
    config.apply_overrides(root_label=root_label, fs_type=fs_type, mkfs_options=mkfs_options)
    return check_graph(config)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise BlockDeviceError(f"cannot read block-device config {path}: {exc.strerror}") \
            from None

