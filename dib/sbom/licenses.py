"""Licence names as Debian and Python packages write them, turned into SPDX
license expressions.

Debian's machine-readable copyright format (DEP-5) names licences with short
names of its own (``GPL-2+``, ``Expat``, ``public-domain``). Those with an
SPDX identifier become that identifier; any other becomes a
``LicenseRef-`` of its own name, so nothing is claimed that the file did
not say. A package whose copyright file is not machine-readable gets
``NOASSERTION``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from dib.sbom import deb822

NOASSERTION = "NOASSERTION"

# SPDX identifiers met in Debian and Python packages. A unit test checks each
# against the SPDX licence list, so none here can be misspelt.
KNOWN_IDS = frozenset("""
0BSD AFL-2.1 AFL-3.0 AGPL-3.0-only AGPL-3.0-or-later Apache-1.0 Apache-1.1 Apache-2.0
APSL-2.0 Artistic-1.0 Artistic-1.0-Perl Artistic-2.0 Beerware BSD-1-Clause BSD-2-Clause
BSD-3-Clause BSD-4-Clause BSL-1.0 bzip2-1.0.6 CC-BY-3.0 CC-BY-4.0 CC-BY-SA-3.0 CC-BY-SA-4.0
CC0-1.0 CDDL-1.0 curl EPL-1.0 EPL-2.0 FSFAP FSFUL FSFULLR FTL GFDL-1.1-only
GFDL-1.1-or-later GFDL-1.2-only GFDL-1.2-or-later GFDL-1.3-only GFDL-1.3-or-later
GPL-1.0-only GPL-1.0-or-later GPL-2.0-only GPL-2.0-or-later GPL-3.0-only GPL-3.0-or-later
HPND ICU IJG Info-ZIP ISC LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1-only LGPL-2.1-or-later
LGPL-3.0-only LGPL-3.0-or-later Libpng libpng-2.0 LPPL-1.3c MIT MIT-0 MPL-1.1 MPL-2.0 NCSA
NTP OFL-1.1 OLDAP-2.8 OpenSSL PostgreSQL PSF-2.0 Python-2.0 Ruby Sleepycat TCL
Unicode-DFS-2016 Unlicense Vim W3C WTFPL X11 Zlib zlib-acknowledgement
""".split())
_BY_LOWER = {name.lower(): name for name in KNOWN_IDS}
# Debian short names that differ from the SPDX identifier of the same licence.
_DEBIAN_ALIASES = {"expat": "MIT", "apache-2": "Apache-2.0", "mpl-2": "MPL-2.0",
                   "mpl-1.1": "MPL-1.1", "psf-2": "PSF-2.0", "cc0": "CC0-1.0"}
# GNU licences: Debian writes GPL-2 and GPL-2+, SPDX GPL-2.0-only and -or-later.
_GNU = re.compile(r"^(?P<family>A?GPL|LGPL|GFDL)-(?P<major>\d)(?:\.(?P<minor>\d))?"
                  r"(?P<plus>\+)?$", re.IGNORECASE)
_LICENSE_REF = re.compile(r"^LicenseRef-[A-Za-z0-9.-]+$")
_TOKENS = re.compile(r"\(|\)|[^\s()]+")
# The format line of a machine-readable copyright file ends with this.
_DEP5_FORMAT = "copyright-format/1.0"


def spdx_id(name: str) -> str | None:
    """The SPDX identifier of one licence short name, or None."""
    lowered = name.strip().lower()
    if lowered in _BY_LOWER:
        return _BY_LOWER[lowered]
    if lowered in _DEBIAN_ALIASES:
        return _DEBIAN_ALIASES[lowered]
    match = _GNU.match(lowered)
    if match:
        version = f"{match['major']}.{match['minor'] or '0'}"
        suffix = "or-later" if match["plus"] else "only"
        return _BY_LOWER.get(f"{match['family']}-{version}-{suffix}".lower())
    return None


def license_ref(name: str) -> str:
    """A ``LicenseRef-`` id for a licence that has no SPDX identifier (an
    idstring may hold only letters, digits, ``.`` and ``-``)."""
    spelled = name.strip().replace("+", "-plus")    # GPL-2+ and GPL-2 must differ
    cleaned = re.sub(r"[^A-Za-z0-9.]+", "-", spelled).strip("-")
    return f"LicenseRef-{cleaned or 'unknown'}"


@dataclass
class Expression:
    """An SPDX license expression and the LicenseRefs it uses (ref → the
    name as the package wrote it), which an SPDX document must define."""
    text: str = NOASSERTION
    refs: dict[str, str] = field(default_factory=dict)


def convert(debian: str) -> Expression:
    """One DEP-5 ``License:`` short name or expression (``GPL-2+ or
    Artistic``) as an SPDX expression. DEP-5's own comma and ``with``
    exception syntax has no exact SPDX form: such a field becomes one
    LicenseRef, so that nothing is guessed."""
    tokens = _TOKENS.findall(debian)
    if not tokens or any("," in t or t.lower() == "with" for t in tokens) \
            or not _well_formed(tokens):
        ref = license_ref(debian)
        return Expression(ref, {ref: debian.strip()})
    out: list[str] = []
    refs: dict[str, str] = {}
    for token in tokens:
        if token in "()":
            out.append(token)
        elif token.lower() in ("and", "or"):
            out.append(token.upper())
        elif _LICENSE_REF.match(token):
            out.append(token)       # already a reference (PEP 639 allows them)
            refs[token] = token.removeprefix("LicenseRef-")
        else:
            known = spdx_id(token)
            if known is None:
                known = license_ref(token)
                refs[known] = token
            out.append(known)
    return Expression(" ".join(out).replace("( ", "(").replace(" )", ")"), refs)


def _well_formed(tokens: list[str]) -> bool:
    """Operands and operators alternate; parentheses balance."""
    depth, want_operand = 0, True
    for token in tokens:
        if token == "(":
            if not want_operand:
                return False
            depth += 1
        elif token == ")":
            depth -= 1
            if depth < 0 or want_operand:
                return False
        elif token.lower() in ("and", "or"):
            if want_operand:
                return False
            want_operand = True
        else:
            if not want_operand:
                return False
            want_operand = False
    return depth == 0 and not want_operand


def combine(expressions: list[Expression]) -> Expression:
    """Several licences of one package: all of them apply (AND)."""
    texts: list[str] = []
    refs: dict[str, str] = {}
    for expression in expressions:
        if expression.text != NOASSERTION and expression.text not in texts:
            texts.append(expression.text)
            refs.update(expression.refs)
    if not texts:
        return Expression()
    if len(texts) == 1:
        return Expression(texts[0], refs)
    return Expression(" AND ".join(f"({t})" if " " in t else t for t in texts), refs)


def dep5_license_names(text: str) -> list[str] | None:
    """The licence short names a machine-readable copyright file gives its
    files (the header's and each ``Files`` paragraph's ``License:`` first
    line), in order, each once; None when the file is not machine-readable.
    Stand-alone ``License`` paragraphs only hold the text of a licence
    named elsewhere, so they add no name."""
    found = deb822.paragraphs(text)
    if not found or _DEP5_FORMAT not in (deb822.field(found[0], "Format") or ""):
        return None
    names: list[str] = []
    for index, para in enumerate(found):
        value = deb822.field(para, "License")
        if value is None or (index > 0 and deb822.field(para, "Files") is None):
            continue
        name = value.split("\n", 1)[0].strip()
        if name and name not in names:
            names.append(name)
    return names


def copyright_expression(text: str | None) -> Expression:
    """The licence of a Debian package from its copyright file's text."""
    names = dep5_license_names(text) if text else None
    if not names:
        return Expression()
    return combine([convert(name) for name in names])
