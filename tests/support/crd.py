"""A strict offline check of custom resources against their CRDs' structural schemas.

An API server prunes fields a structural schema does not list, so a field the CRD does not
know would be silently dropped; here it is an error, unless the node says
`x-kubernetes-preserve-unknown-fields`. `x-kubernetes-int-or-string` accepts both types.
The CRDs live beside the repository in `../shared/schemas/crds/`.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from support.tools import SHARED, require_path

CRDS = SHARED / "schemas" / "crds"


def _strict(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if "properties" in node:
        node["properties"] = {k: _strict(v) for k, v in node["properties"].items()}
        if (
            not node.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in node
        ):
            node["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _strict(node["additionalProperties"])
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"])
    return node


@cache
def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict schema, for every served version of every CRD."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(require_path(CRDS, "CRD schemas").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if schema is not None:
                    strict = _strict(copy.deepcopy(schema))
                    # The API server accepts these at the root whether the schema lists them
                    # or not (Istio's schemas do not).
                    strict.setdefault("properties", {}).update(
                        {
                            k: strict["properties"].get(k, {"type": t})
                            for k, t in (
                                ("apiVersion", "string"),
                                ("kind", "string"),
                                ("metadata", "object"),
                            )
                        }
                    )
                    found[(f"{group}/{version['name']}", kind)] = strict
    return found


def known_kinds() -> set[tuple[str, str]]:
    return set(_schemas())


def validate_custom(doc: dict[str, Any]) -> list[str]:
    """Errors of `doc` against its CRD (an unknown apiVersion/kind is itself an error)."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    schema = _schemas().get(key)
    if schema is None:
        return [f"no CRD for {key[0]} {key[1]}"]
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
    ]


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]
