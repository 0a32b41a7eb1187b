"""The official SBOM JSON schemas as validators, for the unit and the
functional tests: SPDX 2.3 from data/sbom (see its README), CycloneDX 1.5
from the copy cyclonedx-python-lib ships."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import referencing

DATA = Path(__file__).parent / "data" / "sbom"
_CYCLONEDX_BASE = "http://cyclonedx.org/schema/"


def _cyclonedx_resources() -> Path:
    schema_package = pytest.importorskip(
        "cyclonedx.schema", reason="cyclonedx-python-lib (a test dependency) is not installed")
    return Path(schema_package.__file__).parent / "_res"


def spdx_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((DATA / "spdx-2.3.schema.json").read_text())
    return jsonschema.Draft7Validator(schema)


def cyclonedx_validator() -> jsonschema.Draft7Validator:
    res = _cyclonedx_resources()
    # bom-1.5 refers to these two by names relative to its own $id
    resources = [(_CYCLONEDX_BASE + name,
                  referencing.Resource.from_contents(json.loads((res / name).read_text())))
                 for name in ("spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json")]
    registry = referencing.Registry().with_resources(resources)
    schema = json.loads((res / "bom-1.5.SNAPSHOT.schema.json").read_text())
    return jsonschema.Draft7Validator(schema, registry=registry)


def spdx_license_list() -> set[str]:
    """Every SPDX licence identifier (the list the CycloneDX schema holds)."""
    return set(json.loads((_cyclonedx_resources() / "spdx.SNAPSHOT.schema.json")
                          .read_text())["enum"])


def errors(validator: jsonschema.Draft7Validator, document: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
