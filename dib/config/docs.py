"""The settings reference, generated from the registry.

``python3 -m dib.config.docs > docs/settings.md`` rewrites the page; a unit
test fails when the committed page no longer matches the registry.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from dib.config.settings import APPEND, COUNT, OFF_SWITCH, SETTINGS, SWITCH, Setting

REGENERATE = "python3 -m dib.config.docs > docs/settings.md"

# Keys a YAML manifest accepts besides the settings' own keys.
MANIFEST_ONLY_KEYS = (
    ("elements", "list of strings", "The elements to build the image from "
     "(the positional arguments of disk-image-create)."),
    ("environment", "map of strings", "Environment variables for this build, merged over "
     "the caller's environment."),
    ("ramdisk", "boolean", "Build with ramdisk-image-create instead of disk-image-create."),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _show_default(value: Any) -> str:
    if value is None or value == () or value == "":
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    text = str(value)
    # Defaults under the home directory are shown as ~ so the page does not
    # depend on who generated it.
    home = os.path.expanduser("~")
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        text = "~" + text[len(home):]
    return text


def _flags(setting: Setting) -> str:
    if not setting.flags:
        return ""
    metavar = setting.metavar or setting.name.upper()
    shown = []
    for flag in setting.flags:
        if setting.kind in (SWITCH, OFF_SWITCH, COUNT):
            shown.append(f"`{flag}`")
        else:
            shown.append(f"`{flag} {metavar}`")
    text = ", ".join(shown)
    if setting.kind == COUNT:
        text += " (repeatable)"
    elif setting.kind == APPEND:
        text += " (repeatable)"
    return text


def _code(text: str | None) -> str:
    return f"`{text}`" if text else ""


def _help(setting: Setting) -> str:
    text = setting.help
    if setting.choices:
        text += f" Accepted values: {', '.join(setting.choices)}."
    return text


def settings_markdown() -> str:
    """The settings reference page as Markdown."""
    lines = [
        "# Settings",
        "",
        "Every build setting, as declared in `dib/config/settings.py`. Each one can be "
        "given as a command-line flag (`dib build`, `disk-image-create`, "
        "`ramdisk-image-create`), as an environment variable and as a key of a YAML "
        "manifest (`diskimage-builder FILE.yaml`). A flag beats the environment, which "
        "beats the default.",
        "",
        f"This page is generated: `{REGENERATE}`.",
        "",
        "| setting | flags | environment variable | YAML key | default | help |",
        "|---|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        row = (f"`{setting.name}`", _flags(setting), _code(setting.env),
               _code(setting.yaml_key), _code(_show_default(setting.default_value())),
               _help(setting))
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    lines += [
        "",
        "## Keys only a YAML manifest has",
        "",
        "| YAML key | type | help |",
        "|---|---|---|",
    ]
    for key, kind, text in MANIFEST_ONLY_KEYS:
        lines.append(f"| `{key}` | {kind} | {_cell(text)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(settings_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
