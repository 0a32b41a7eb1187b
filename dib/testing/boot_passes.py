"""Boot checks that passed, kept so that an unchanged case is not booted again.

A boot check's outcome is decided by what the image is made of, the case's
directory (its ``expect.yaml`` with the boot plan and checks, and the seed
files), the harness's own boot code and the qemu and firmware it runs. What
the image is made of is the key of the build's ``outputs`` step: the phase
cache's key of every input of the finished tree and of the image's making
(two builds with that key differ only in the times and random identifiers
a build without ``SOURCE_DATE_EPOCH`` writes). When all of these are what
they were when the check passed, booting again under TCG would spend a
minute to learn nothing, so ``dib test`` reports the earlier pass instead,
and says so. A change to any of them boots again; a failed check is never
kept; ``dib test --rerun-boots`` (or ``--no-cache``) boots every case
regardless.

Kept as ``CACHE_DIR/boots/KEY.json``, a few kilobytes each; ``dib cache
prune`` leaves them alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dib.cache.keys import directory_digest, file_digest
from dib.testing.boot import OVMF_BIOS, OVMF_CODE, OVMF_VARS

#: the modules whose code decides how a guest is booted and checked
BOOT_MODULES = ("boot.py", "guest.py", "seed.py", "expect.py", "boot_passes.py")
#: files outside dib that decide the boot: the emulator and the firmware
QEMU = "qemu-system-x86_64"
FIRMWARE = (str(OVMF_BIOS), str(OVMF_CODE), str(OVMF_VARS), "/usr/share/seabios/bios-256k.bin")


def _stat_line(path: str | None) -> str:
    """A host file by path, size and modification time: an upgrade changes it."""
    if path is None or not os.path.exists(path):
        return f"{path}: absent"
    st = os.stat(path)
    return f"{path}: {st.st_size} {st.st_mtime_ns}"


def boot_code_digest() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in BOOT_MODULES:
        digest.update(f"{name}\0{file_digest(here / name)}\n".encode())
    return digest.hexdigest()


def host_line() -> str:
    return "\n".join(_stat_line(p) for p in (shutil.which(QEMU), *FIRMWARE))


def pass_key(image_key: str, case_dir: Path, plan: str) -> str:
    """What a boot check's outcome depends on, as one SHA-256. ``image_key``
    is the build's key for the image (its ``outputs`` step), ``plan`` the
    boot plan as read (after the harness's own defaults)."""
    parts = [f"image {image_key}", f"case {directory_digest(case_dir)}",
             f"plan {plan}", f"code {boot_code_digest()}", f"host {host_line()}"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class BootPasses:
    """The boot checks that passed, under ``root`` (``CACHE_DIR/boots``)."""

    root: Path

    def recall(self, key: str) -> dict[str, Any] | None:
        """The boot report kept for ``key``, with ``reused_from`` (when it
        passed) added; None when no pass is kept."""
        path = self.root / f"{key}.json"
        try:
            kept = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(kept, dict) or not isinstance(kept.get("boot"), dict):
            return None
        return {**kept["boot"], "reused_from": kept.get("passed", "")}

    def remember(self, key: str, boot_report: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        passed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        staging = self.root / f".{key}.{os.getpid()}.tmp"
        staging.write_text(json.dumps({"passed": passed, "boot": boot_report}, indent=1))
        staging.replace(self.root / f"{key}.json")
