"""What DIB does to every tree after cleanup.d: no identity, no leftovers."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def tidy_tree(tree: Path) -> None:
    """Empty machine-id (regenerated on first boot), empty /tmp, truncated logs."""
    machine_id = tree / "etc" / "machine-id"
    if machine_id.exists() or machine_id.is_symlink():
        machine_id.unlink()
        machine_id.write_text("")
        machine_id.chmod(0o444)
    dbus_id = tree / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.is_file() and not dbus_id.is_symlink():
        dbus_id.unlink()
    tmp = tree / "tmp"
    if tmp.is_dir():
        for entry in tmp.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    logs = tree / "var" / "log"
    if logs.is_dir():
        for root, _dirs, files in os.walk(logs):
            for name in files:
                path = Path(root) / name
                if path.is_file() and not path.is_symlink() and path.stat().st_size:
                    path.write_bytes(b"")
    for leftover in tree.glob("root/*.log"):
        leftover.unlink()
