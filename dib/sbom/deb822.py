"""Debian's control-file format (deb822): the dpkg status file and
machine-readable copyright files are both written in it."""
from __future__ import annotations


def paragraphs(text: str) -> list[dict[str, str]]:
    """Each paragraph as field → value. Field names are kept as written;
    continuation lines are joined with newlines, with the leading space of
    each dropped (a lone ``.`` stands for an empty line, as the format says)."""
    found: list[dict[str, str]] = []
    # each field's lines, joined once its paragraph ends: a licence text
    # runs to hundreds of lines
    current: dict[str, list[str]] = {}
    last: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                found.append(_joined(current))
            current, last = {}, None
            continue
        if line.startswith("#"):
            continue
        if line[0] in " \t":
            if last is not None:
                more = line[1:]
                last.append("" if more.strip() == "." else more)
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue    # not a field: a damaged line is skipped, not fatal
        last = current[name.strip()] = [value.strip()]
    if current:
        found.append(_joined(current))
    return found


def _joined(fields: dict[str, list[str]]) -> dict[str, str]:
    return {name: "\n".join(lines) for name, lines in fields.items()}


def field(paragraph: dict[str, str], name: str) -> str | None:
    """A field by name, whatever its case (field names are case-insensitive)."""
    lowered = name.lower()
    for key, value in paragraph.items():
        if key.lower() == lowered:
            return value
    return None
