"""The host's Debian mirror, read from its apt sources: the default for builds.

No mirror name is ever built in; a host with no apt sources gets a clear
error asking for DIB_DISTRIBUTION_MIRROR.
"""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

APT_DIR = Path("/etc/apt")


def without_credentials(url: str) -> str:
    """A mirror URL may carry user:password@; logs, records and cache
    entries that may travel must not."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


@dataclass(frozen=True)
class HostMirrors:
    mirror: str | None
    security: str | None


def _deb822_uris(text: str) -> list[tuple[str, str]]:
    """(uri, suites) pairs from a deb822 .sources file."""
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "deb").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            out.append((uri, fields.get("suites", "")))
    return out


def _one_line_uris(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] != "deb":
            continue
        words = [w for w in words[1:] if not w.startswith("[")]
        # "[opt=val ...]" may span words; keep the first URL-looking word.
        urls = [w for w in words if "://" in w]
        if urls:
            rest = words[words.index(urls[0]) + 1:]
            out.append((urls[0], rest[0] if rest else ""))
    return out


def host_mirrors(apt_dir: Path = APT_DIR) -> HostMirrors:
    pairs: list[tuple[str, str]] = []
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        pairs += _deb822_uris(path.read_text(errors="replace"))
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            pairs += _one_line_uris(path.read_text(errors="replace"))
    mirror = next((u for u, s in pairs if "security" not in s and "security" not in u), None)
    security = next((u for u, s in pairs if "security" in s or "security" in u), None)
    return HostMirrors(mirror.rstrip("/") if mirror else None,
                       security.rstrip("/") if security else None)
