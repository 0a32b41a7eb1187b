"""The schema of dib's provenance statement (data/provenance, written for
these tests from the in-toto and SLSA specifications), for the unit and the
functional tests."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema

SCHEMA = Path(__file__).parent / "data" / "provenance" / "statement.schema.json"


def provenance_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(document: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}"
            for e in provenance_validator().iter_errors(document)]
