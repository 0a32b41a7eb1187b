"""DIB's size syntax, turned into bytes.

Accepted: a plain number of bytes (``"4096"``, ``4096``), a number with a
unit (``"8MiB"``, ``"500MB"``, ``"1.5 GiB"``, ``"2G"``) and, where a caller
passes the space available, a percentage (``"50%"``).  Decimal units (KB,
MB, GB, TB and the bare K, M, G, T) are powers of 1000; binary units (KiB,
MiB, GiB, TiB) are powers of 1024, exactly as diskimage-builder reads them.
"""
from __future__ import annotations

import re

from dib.errors import BlockDeviceError

KiB = 1024
MiB = 1024 ** 2
GiB = 1024 ** 3

_UNITS: dict[str, int] = {
    "": 1, "B": 1,
    "K": 1000, "KB": 1000, "KiB": KiB,
    "M": 1000 ** 2, "MB": 1000 ** 2, "MiB": MiB,
    "G": 1000 ** 3, "GB": 1000 ** 3, "GiB": GiB,
    "T": 1000 ** 4, "TB": 1000 ** 4, "TiB": 1024 ** 4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


def is_relative(spec: str | int | float) -> bool:
    """True when the size is a percentage of the space available."""
    return isinstance(spec, str) and spec.strip().endswith("%")


def percentage(spec: str | int | float, *, what: str = "size") -> float | None:
    """The share of the space available that a relative size asks for
    (``"50%"`` → 50.0), or None for an absolute size."""
    if not is_relative(spec):
        return None
    number = str(spec).strip()[:-1].strip()
    try:
        percent = float(number)
    except ValueError:
        raise BlockDeviceError(f"invalid {what} {spec!r}: a percentage must be a "
                               "number followed by %, e.g. 50%") from None
    if not 0 < percent <= 100:
        raise BlockDeviceError(f"invalid {what} {spec!r}: a percentage must be "
                               "greater than 0 and at most 100")
    return percent


def parse_size(spec: str | int | float, *, available: int | None = None,
               what: str = "size") -> int:
    """Return ``spec`` in bytes; ``"N%"`` needs ``available`` (bytes)."""
    if isinstance(spec, bool):
        raise BlockDeviceError(f"invalid {what} {spec!r}: expected a number with an "
                               "optional unit such as 8MiB, 500MB, 1GiB or 50%")
    if isinstance(spec, (int, float)):
        if spec < 0:
            raise BlockDeviceError(f"invalid {what} {spec!r}: must not be negative")
        return int(spec)
    if not isinstance(spec, str):
        raise BlockDeviceError(f"invalid {what} {spec!r}: expected a string like 8MiB")
    text = spec.strip()
    percent = percentage(spec, what=what)
    if percent is not None:
        if available is None:
            raise BlockDeviceError(f"{what} {spec!r} is relative but nothing is known "
                                   "about the space it is relative to; give an "
                                   "absolute size such as 1GiB")
        return int(available * percent / 100.0)
    match = _SIZE_RE.match(text)
    if not match or match.group(2) not in _UNITS:
        raise BlockDeviceError(
            f"invalid {what} {spec!r}: expected a number with an optional unit "
            f"({', '.join(u for u in _UNITS if u)}) or a percentage such as 50%")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_image_size_gb(value: str | int | float) -> int:
    """DIB_IMAGE_SIZE → bytes. DIB's --image-size says "GB" but multiplies by
    1024 * 1024 KiB, then rounds up to 64 KiB: GiB, fractions allowed."""
    try:
        gb = float(value)
    except (TypeError, ValueError):
        raise BlockDeviceError(f"invalid image size {value!r}: DIB_IMAGE_SIZE is a "
                               "number of GiB, e.g. 2 or 2.5") from None
    if gb <= 0:
        raise BlockDeviceError(f"invalid image size {value!r}: must be greater than 0")
    return align_up(int(gb * GiB), 64 * KiB)


def parse_extra_size_mb(value: str | int | float) -> int:
    """DIB_IMAGE_EXTRA_SIZE (MiB added to the tree size) → bytes."""
    try:
        mb = float(value)
    except (TypeError, ValueError):
        raise BlockDeviceError(f"invalid extra image size {value!r}: "
                               "DIB_IMAGE_EXTRA_SIZE is a number of MiB") from None
    if mb < 0:
        raise BlockDeviceError(f"invalid extra image size {value!r}: must not be negative")
    return int(mb * MiB)


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment


def human(value: int) -> str:
    """Short binary-unit text for messages: 1.5 GiB, 8 MiB, 512 B."""
    for unit, factor in (("TiB", 1024 ** 4), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if value >= factor:
            number = value / factor
            return f"{number:.0f} {unit}" if number == int(number) else f"{number:.1f} {unit}"
    return f"{value} B"
