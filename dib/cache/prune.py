"""Keeping the cache within bounds: least recently used first."""
from __future__ import annotations

import time
from dataclasses import dataclass

from dib.cache.dedup import Usage
from dib.cache.store import CacheStore, Entry
from dib.config.settings import by_name

# one default, the settings registry's (DIB_CACHE_MAX_SIZE, --cache-max-size)
DEFAULT_MAX_SIZE: int = by_name("cache_max_size").default_value()


@dataclass(frozen=True)
class PruneResult:
    removed: list[Entry]
    kept_bytes: int


def prune_order(entries: list[Entry]) -> list[Entry]:
    """The order entries are given up: least recently used first, and among
    equals the child before its parent (a child is useless without it)."""
    depth = {}
    by_key = {e.key: e for e in entries}
    for entry in entries:
        d, parent = 0, entry.parent
        while parent in by_key and d < 1000:
            d, parent = d + 1, by_key[parent].parent
        depth[entry.key] = d
    return sorted(entries, key=lambda e: (e.last_used, -depth[e.key], e.key))


def prune(store: CacheStore, *, max_size: int | None = DEFAULT_MAX_SIZE,
          max_age: float | None = None, now: float | None = None,
          dry_run: bool = False) -> PruneResult:
    """Drop entries unused for ``max_age``, then, over ``max_size``, share the
    files entries have in common and only then give up the least recently
    used. A dry run shares nothing, so it may list more than a prune removes."""
    now = time.time() if now is None else now
    store.sweep_staging()
    entries = list(store.entries())
    removed: list[Entry] = []
    alive = {e.key: e for e in entries}

    def drop(entry: Entry) -> bool:
        if entry.key not in alive or store.in_use(entry):
            return False
        del alive[entry.key]
        removed.append(entry)
        if not dry_run:
            store.remove(entry)
        return True

    for entry in prune_order(entries):
        if max_age is not None and now - entry.last_used > max_age:
            drop(entry)
    usage = Usage((e.key, e.size, e.shared) for e in alive.values())
    if max_size is not None and usage.total > max_size and not dry_run:
        # Sharing reads every file of the entries not shared yet: paid only
        # when the alternative is losing entries.
        store.share_files()
        usage = Usage((e.key, e.size, e.shared) for e in alive.values())
    for entry in prune_order(list(alive.values())):
        if max_size is None or usage.total <= max_size:
            break
        if drop(entry):
            usage.drop(entry.key)
    # An entry whose parent is gone can never be restored.
    changed = True
    while changed:
        changed = False
        for entry in list(alive.values()):
            if entry.parent and entry.parent not in alive:
                drop(entry)
                changed = entry.key not in alive or changed
    if not dry_run:
        store.collect_objects()
    return PruneResult(removed, store.size_of(alive.values()))
