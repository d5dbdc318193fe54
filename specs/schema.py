"""JSON Schema export of the spec language, for editors (`yaml-language-server`) and tools."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic.json_schema import GenerateJsonSchema

SCHEMA_ID = "https://mlc.dev/schema/mlc-v1.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file (with `defaults:` allowed for overlays)."""
    from mlc.specs.spec import Spec

    schema: dict[str, Any] = Spec.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_documented_generator()
    )
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


def attribute_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the docstring written under it, searching the class and its bases.

    Spec models do not set pydantic's `use_attribute_docstrings` (reading their source costs
    more at start-up than the rest of `mlc validate`); the schema reads the docstrings here.

    >>> from mlc.specs._base import Resources
    >>> attribute_docstrings(Resources)
    {'nodes': 'Number of nodes (machines) for distributed work.'}
    """
    import ast
    import inspect
    import itertools
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass.__module__.startswith("pydantic"):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        own = set(vars(klass).get("__annotations__", {}))
        docs = {k: v for k, v in docs.items() if k not in own}
        for prev, node in itertools.pairwise(body):
            if (
                isinstance(prev, ast.AnnAssign)
                and isinstance(prev.target, ast.Name)
                and isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                docs[prev.target.id] = inspect.cleandoc(node.value.value)
    return docs


def _documented_generator() -> type[GenerateJsonSchema]:
    from pydantic import BaseModel
    from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
    from pydantic_core import core_schema

    class DocumentedSchema(GenerateJsonSchema):
        """Adds each field's attribute docstring as its description (where none is set)."""

        def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
            out = super().model_schema(schema)
            cls = schema["cls"]
            properties = out.get("properties")
            if not issubclass(cls, BaseModel) or not isinstance(properties, dict):
                return out
            docs = attribute_docstrings(cls)
            for name, field in cls.model_fields.items():
                key = field.alias if self.by_alias and field.alias else name
                if name in docs and field.description is None and key in properties:
                    properties[key] = {**properties[key], "description": docs[name]}
            return out

    return DocumentedSchema


def json_schema_text() -> str:
    """The schema as stable, sorted JSON text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
