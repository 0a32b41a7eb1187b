"""The shell text DIB's ``element-info --env`` prints, for hooks to eval."""
from __future__ import annotations

import yaml

from dib.elements.resolve import Resolution


def _single_quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def image_element_vars(resolution: Resolution) -> dict[str, str]:
    """IMAGE_ELEMENT and IMAGE_ELEMENT_YAML as values (the engine exports them)."""
    names = resolution.names
    paths = {e.name: str(e.path) for e in resolution.elements}
    return {"IMAGE_ELEMENT": " ".join(names),
            "IMAGE_ELEMENT_YAML": yaml.safe_dump(paths, sort_keys=True)}


def element_array_body(resolution: Resolution) -> str:
    return "".join(f"[{e.name}]={e.path} " for e in resolution.elements)


def env_script(resolution: Resolution) -> str:
    values = image_element_vars(resolution)
    lines = [f"export IMAGE_ELEMENT={_single_quoted(values['IMAGE_ELEMENT'])}",
             f"export IMAGE_ELEMENT_YAML={_single_quoted(values['IMAGE_ELEMENT_YAML'])}",
             "function get_image_element_array {",
             f'  echo "{element_array_body(resolution)}"',
             "};",
             "export -f get_image_element_array;"]
    return "\n".join(lines) + "\n"
