"""dib cache list|show|prune: what the phase cache holds, and keeping it small."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from dib.blockdev.sizes import parse_size
from dib.cache import CacheStore, prune
from dib.cache.chain import entry_summary
from dib.cache.disks import DiskBases
from dib.config.build import parse_value, resolve_setting
from dib.config.settings import by_name
from dib.errors import ConfigError, DibError


def parse_bytes(text: str) -> int:
    """--max-size in DIB's size syntax (10G, 500MiB, ...)."""
    try:
        return parse_size(text, what="--max-size")
    except DibError as exc:
        raise ConfigError(exc.message) from None


def parse_age(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    unit = text[-1:].lower()
    try:
        return float(text[:-1]) * units[unit] if unit in units else float(text) * 86400
    except ValueError:
        raise ConfigError(f"--max-age: invalid age '{text}'; use e.g. 12h, 7d") from None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("cache", help="inspect and prune the phase cache")
    parser.add_argument("--cache-dir", default=None,
                        help="cache directory [env: DIB_CACHE_DIR]")
    sub = parser.add_subparsers(dest="cache_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="every entry: step, size, age, last use, build")
    listing.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one entry and the inputs its key was made from")
    show.add_argument("key", help="a key or a unique prefix of one")
    pruning = sub.add_parser("prune", help="remove entries, least recently used first")
    pruning.add_argument("--max-size", type=parse_bytes, default=None,
                         help="keep at most this much (default: DIB_CACHE_MAX_SIZE, else "
                              "10G; 0: no limit)")
    pruning.add_argument("--max-age", type=parse_age, default=None,
                         help="remove entries unused for this long (e.g. 7d)")
    pruning.add_argument("--all", action="store_true",
                         help="remove every entry and every kept disk")
    pruning.add_argument("--dry-run", action="store_true")
    parser.set_defaults(handler=main)


def _store(args: argparse.Namespace) -> CacheStore:
    setting = by_name("cache_dir")
    if args.cache_dir:
        root = parse_value(setting, args.cache_dir, "--cache-dir")
    elif os.environ.get("DIB_CACHE_DIR"):
        root = parse_value(setting, os.environ["DIB_CACHE_DIR"], "DIB_CACHE_DIR")
    else:
        root = setting.default_value()
    return CacheStore(Path(root) / "phases")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def main(args: argparse.Namespace) -> int:
    store = _store(args)
    now = time.time()
    if args.cache_command == "list":
        entries = sorted(store.entries(), key=lambda e: e.last_used, reverse=True)
        if args.json:
            json.dump([entry_summary(e) for e in entries], sys.stdout, indent=1)
            sys.stdout.write("\n")
            return 0
        print(f"{'key':<14} {'step':<13} {'size':>9} {'age':>5} {'used':>5}  build")
        for e in entries:
            print(f"{e.key[:12]:<14} {e.meta.get('step', '?'):<13} "
                  f"{e.size / (1 << 20):8.1f}M {_age(now - e.meta.get('created', now)):>5} "
                  f"{_age(now - e.last_used):>5}  {e.meta.get('build', '')}")
        total = store.size_of(entries)
        print(f"{len(entries)} entries, {total / (1 << 20):.1f} MiB "
              "(files entries share counted once)")
        disks, held = DiskBases(store.root.parent).held_bytes()
        print(f"{disks} kept disks (updated in place by the next build of their layout), "
              f"{held / (1 << 20):.1f} MiB")
    elif args.cache_command == "show":
        matches = [e for e in store.entries() if e.key.startswith(args.key)]
        if len(matches) != 1:
            raise ConfigError(f"cache key '{args.key}' matches {len(matches)} entries; "
                              "give more of the key (see 'dib cache list')")
        json.dump(dict(entry_summary(matches[0]), inputs=matches[0].meta.get("inputs", {})),
                  sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        max_size = args.max_size if args.max_size is not None else \
            resolve_setting(by_name("cache_max_size"), None, os.environ)
        result = prune(store, max_size=0 if args.all else (max_size or None),
                       max_age=args.max_age, dry_run=args.dry_run)
        if args.all and not args.dry_run:
            DiskBases(store.root.parent).clear()
        verb = "would remove" if args.dry_run else "removed"
        print(f"{verb} {len(result.removed)} entries; "
              f"{result.kept_bytes / (1 << 20):.1f} MiB kept")
    return 0
