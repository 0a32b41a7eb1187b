"""Content-addressed phase checkpoints: warm rebuilds reuse every unchanged step."""
from dib.cache.chain import Checkpoints, snapshot_hooks
from dib.cache.prune import DEFAULT_MAX_SIZE, prune
from dib.cache.store import CacheStore, Entry

__all__ = ["Checkpoints", "snapshot_hooks", "DEFAULT_MAX_SIZE", "prune", "CacheStore", "Entry"]
