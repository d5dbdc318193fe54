"""Shared building blocks of the spec language: the strict base model and small value types."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Violation:
    """A failed cross-field rule, located by its key path relative to the model that found it."""

    loc: KeyPath
    code: str
    message: str
    hint: str = ""

    def under(self, *prefix: str | int) -> Violation:
        return Violation((*prefix, *self.loc), self.code, self.message, self.hint)


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        # Off for start-up speed: the JSON Schema export reads attribute docstrings itself
        # (mlc.specs.schema.attribute_docstrings), so descriptions are unchanged.
        use_attribute_docstrings=False,
        populate_by_name=False,
        # Sections are validated through the root `Spec`, whose schema inlines them: building
        # a validator per nested model at import time is start-up cost with no use.
        defer_build=True,
    )

    def violations(self) -> Iterator[Violation]:
        """Cross-field rules that need more than one field; paths relative to this model."""
        return iter(())


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> Any:
    """Turn `"30m"`, `"2h"`, `"7d"` or a number of seconds into seconds (an int where exact).

    >>> parse_duration("90m")
    5400
    >>> parse_duration(45)
    45
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30m', '2h', '7d'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"{value!r} is not a duration; use seconds or a number with a unit "
                "(ms, s, m, h, d, w), e.g. '30m'"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        return int(seconds) if seconds == int(seconds) else seconds
    raise ValueError("a duration is a number of seconds or a string like '30m', '2h', '7d'")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(ge=0),
    # the schema says what a spec file may hold (numbers or '30m'), not the parsed float
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _DURATION.pattern},
            ],
            "examples": ["30m", "2h", 3600],
        }
    ),
]
"""Seconds; written as a number or as a string with a unit (`30m`, `2h`, `7d`)."""

_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _check_ref(value: str) -> str:
    if not _REF.match(value):
        raise ValueError(f"{value!r} is not an entry point; write 'package.module:function'")
    return value


EntryPoint = Annotated[
    str, AfterValidator(_check_ref), Field(json_schema_extra={"pattern": _REF.pattern})
]
"""A Python callable named as `package.module:function`."""

SECRET_SCHEMES = ("env", "vault", "aws-sm", "gcp-sm", "azure-kv")
_SECRET = re.compile(r"^(env|vault|aws-sm|gcp-sm|azure-kv):[^\s]+$")


def is_secret_ref(value: str) -> bool:
    """True when `value` is a secret reference such as `vault:secret/data/db#password`."""
    return bool(_SECRET.match(value))


def _check_secret(value: str) -> str:
    if not is_secret_ref(value):
        raise ValueError(
            "secrets are references, never values: write one of "
            + ", ".join(f"'{s}:…'" for s in SECRET_SCHEMES)
            + " (e.g. 'vault:secret/data/db#password')"
        )
    return value


SecretRef = Annotated[
    str, AfterValidator(_check_secret), Field(json_schema_extra={"pattern": _SECRET.pattern})
]
"""A reference to a secret held elsewhere: `env:`, `vault:`, `aws-sm:`, `gcp-sm:`, `azure-kv:`."""

_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")


def _check_cpu(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _CPU.match(value):
        raise ValueError(f"{value!r} is not a CPU quantity; write e.g. 2, 0.5 or '500m'")
    return value


def _check_memory(value: Any) -> Any:
    if not isinstance(value, str) or not _MEMORY.match(value):
        raise ValueError(f"{value!r} is not a memory quantity; write e.g. '512Mi' or '4Gi'")
    return value


CpuQuantity = Annotated[
    str,
    BeforeValidator(_check_cpu),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _CPU.pattern},
            ],
            "examples": ["2", "500m"],
        }
    ),
]
"""Kubernetes CPU quantity: cores (`2`, `0.5`) or millicores (`500m`)."""
MemoryQuantity = Annotated[str, BeforeValidator(_check_memory), Field(examples=["4Gi"])]
"""Kubernetes memory quantity (`512Mi`, `4Gi`)."""

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
"""A lower-case DNS-1123 style name: letters, digits and dashes, starting with a letter."""

Identifier = Annotated[str, Field(min_length=1, max_length=128)]
"""A column, metric or parameter name."""

_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?]+$")


def _check_cron(value: str) -> str:
    fields = value.split()
    if value.startswith("@") and value in {
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
    }:
        return value
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"{value!r} is not a cron schedule; write five fields 'min hour day month weekday' "
            "(e.g. '0 3 * * 1') or @hourly/@daily/@weekly/@monthly"
        )
    return value


Cron = Annotated[str, AfterValidator(_check_cron), Field(examples=["0 3 * * 1", "@daily"])]
"""A cron schedule of five fields, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`."""


class GpuSpec(StrictModel):
    count: int = Field(ge=1)
    """Number of GPUs per node."""
    type: str | None = None
    """Accelerator type, e.g. `nvidia-tesla-t4`, `nvidia-a100`, `nvidia-h100`."""


class Resources(StrictModel):
    cpu: CpuQuantity | None = None
    memory: MemoryQuantity | None = None
    gpu: GpuSpec | None = None
    nodes: int = Field(1, ge=1)
    """Number of nodes (machines) for distributed work."""
