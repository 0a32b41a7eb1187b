"""Value parsers for settings. Each raises ValueError with a short reason."""
from __future__ import annotations

import os
import re
import urllib.parse


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected one of 1, 0, true, false, yes, no")


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("not a whole number") from None
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


_BYTE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def byte_size(text: str) -> int:
    """Bytes from ``10G``, ``500M``, ``1.5GiB`` or a bare number of bytes
    (K, M, G, T are powers of 1024)."""
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = cleaned[-1:] if cleaned[-1:] in _BYTE_UNITS else ""
    try:
        value = float(cleaned[:len(cleaned) - len(unit)])
    except ValueError:
        raise ValueError("not a size; use e.g. 10G or 500M") from None
    if value < 0:
        raise ValueError("must be 0 or more")
    return int(value * _BYTE_UNITS[unit])


def comma_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def path(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return os.path.abspath(os.path.expanduser(text))


def optional_path(text: str) -> str:
    """A path, or '' for 'none' (or an empty value): the feature is off."""
    if text.strip().lower() in ("", "none"):
        return ""
    return path(text)


def key_values(text: str) -> str:
    """qemu-img style ``k=v,k=v``; kept as text, checked for shape."""
    for item in comma_list(text):
        if "=" not in item:
            raise ValueError(f"'{item}' is not key=value")
    return text


def checksum_kinds(text: str) -> tuple[str, ...]:
    """DIB_CHECKSUM: 1 means md5 and sha256; or a list of md5/sha256."""
    lowered = text.strip().lower()
    if lowered in ("", "0", "false", "no"):
        return ()
    if lowered in ("1", "true", "yes"):
        return ("md5", "sha256")
    kinds = comma_list(lowered.replace(" ", ","))
    bad = [k for k in kinds if k not in ("md5", "sha256")]
    if bad:
        raise ValueError(f"unknown checksum {', '.join(bad)}; use md5, sha256 or 1")
    return kinds


SBOM_FORMATS = ("spdx", "cyclonedx")


def sbom_formats(text: str) -> tuple[str, ...]:
    """--sbom: a comma list of spdx and cyclonedx; 'none' for no SBOM."""
    kinds = comma_list(text.lower())
    if kinds == ("none",):
        return ()
    bad = [k for k in kinds if k not in SBOM_FORMATS]
    if bad or not kinds:
        raise ValueError(f"unknown SBOM format {', '.join(bad) or '(empty)'}; use "
                         f"{', '.join(SBOM_FORMATS)} (comma list) or none")
    return tuple(dict.fromkeys(kinds))


# The distribution spec's grammar of repository names.
OCI_REPOSITORY_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
                               r"(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")


def oci_location(text: str) -> tuple[str, str]:
    """(HOST[:PORT], REPO) of ``oci://HOST[:PORT]/REPO``."""
    if not text.startswith("oci://"):
        raise ValueError("expected oci://HOST[:PORT]/REPO")
    host, _, repository = text[len("oci://"):].partition("/")
    repository = repository.rstrip("/")
    if not host or not repository:
        raise ValueError("expected oci://HOST[:PORT]/REPO (a host and a repository)")
    try:
        parts = urllib.parse.urlsplit(f"//{host}")
        parts.port  # raises on a port that is not a number
    except ValueError:
        raise ValueError(f"'{host}' is not HOST or HOST:PORT") from None
    if not parts.hostname or parts.username or parts.password:
        raise ValueError(f"'{host}' is not HOST or HOST:PORT (credentials do not go in the "
                         "URL: they are read from ~/.docker/config.json)")
    if not OCI_REPOSITORY_RE.match(repository):
        raise ValueError(f"'{repository}' is not a repository name (lower case letters, "
                         "digits, '.', '_', '-', parts separated by '/')")
    return host, repository


def oci_url(text: str) -> str:
    """``oci://HOST[:PORT]/REPO``, checked; kept as text."""
    host, repository = oci_location(text.strip())
    return f"oci://{host}/{repository}"
