"""JSON Schema export of the spec language, for editors (`yaml-language-server`) and tools."""

from __future__ import annotations

import json
from typing import Any

SCHEMA_ID = "https://mlc.dev/schema/mlc-v1.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file (with `defaults:` allowed for overlays)."""
    from mlc.specs.spec import Spec

    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "mlc spec"
    schema.setdefault("properties", {})["defaults"] = {
        "description": "Overlays merged with this file (Hydra defaults list): file paths, "
        "'_self_', or {group: option} for group/option.yaml.",
        "type": "array",
        "items": {
            "anyOf": [
                {"type": "string"},
                {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
            ]
        },
    }
    return schema


def json_schema_text() -> str:
    """The schema as stable, sorted JSON text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
