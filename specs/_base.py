"""Shared building blocks of the spec language: the strict base model and small value types."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from mlc.specs import quantities

KeyPath = tuple[str | int, ...]

MAX_INT = 2**53 - 1
"""The largest integer (and, negated, the smallest) a spec may hold anywhere: the JSON readers
of emitted files (Grafana, JavaScript) and the protobuf doubles of a KFP pipeline spec keep
integers exact only up to here."""
INT32_MAX = 2**31 - 1
"""The largest count Kubernetes takes for replicas and nodes (int32 fields)."""
SEED_MAX = 2**32 - 1
"""Seeds are 0 .. 2**32 - 1: the range numpy and scikit-learn take for `random_state`."""
MAX_DURATION_S = 20 * 365 * 86400
"""The longest duration a spec may hold: 20 years (`7300d`). Every target expresses it:
Kubernetes keeps such seconds in int32 (68 years), Prometheus and Go durations in int64
nanoseconds (292 years), cloud lifecycle rules count days; no timeout, window or retention
needs more."""


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
        # `.inf` and `.nan` are YAML floats; no target can write them (see _finite_numbers)
        allow_inf_nan=False,
        validate_default=True,
        # Off for start-up speed: the JSON Schema export reads attribute docstrings itself
        # (mlc.specs.schema.attribute_docstrings), so descriptions are unchanged.
        use_attribute_docstrings=False,
        populate_by_name=False,
        # Sections are validated through the root `Spec`, whose schema inlines them: building
        # a validator per nested model at import time is start-up cost with no use.
        defer_build=True,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _finite_numbers(cls, value: Any) -> Any:
        """Every number in every field, free-form mappings (`params`, `targets`) included.

        `allow_inf_nan` only reaches fields typed as floats, and nothing bounds a plain `int`:
        a value no target can write (`.inf`, `2**64`) is refused here, at its key, so that a
        spec that validates compiles.
        """
        problem = _number_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def violations(self) -> Iterator[Violation]:
        """Cross-field rules that need more than one field; paths relative to this model."""
        return iter(())


def _finite_value(value: Any) -> Any:
    problem = _number_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


FreeValue = Annotated[Any, AfterValidator(_finite_value)]
"""Any value of a free-form mapping (model params, target options), numbers finite and in
range; the error is located at the entry's own key."""


def _number_problem(value: Any, where: str = "") -> str | None:
    """Why `value` (or a number inside it) is no number a target can write, or None."""
    at = f"at '{where}': " if where else ""
    if isinstance(value, bool | str | BaseModel) or value is None:
        return None  # a nested model checked its own fields
    if isinstance(value, int):
        if -MAX_INT <= value <= MAX_INT:
            return None
        shown = str(value) if len(str(value)) <= 24 else f"an integer of {len(str(value))} digits"
        return (
            f"{at}{shown} is out of range; integers must lie within +/-{MAX_INT} (2**53 - 1, "
            "the largest that JSON readers and KFP keep exact)"
        )
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{at}{value!r} is not a finite number; write a number such as 0.5 or 1e6"
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    for key, item in items:
        problem = _number_problem(item, f"{where}.{key}" if where else str(key))
        if problem is not None:
            return problem
    return None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> Any:
    """Turn `"30m"`, `"2h"`, `"7d"` or a number of seconds into seconds (an int where exact).

    >>> parse_duration("90m")
    5400
    >>> parse_duration(45)
    45
    >>> parse_duration("7301d")
    Traceback (most recent call last):
    ...
    ValueError: '7301d' is longer than 20 years (7300d), the longest duration mlc accepts
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30m', '2h', '7d'")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration; write e.g. '30m', '7d' or 3600")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        seconds: float = value
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"{value!r} is not a duration; use seconds or a number with a unit "
                "(ms, s, m, h, d, w), e.g. '30m'"
            )
        # a long enough run of digits is an infinite float: compare before converting to int
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError("a duration is a number of seconds or a string like '30m', '2h', '7d'")
    if seconds > MAX_DURATION_S:
        shown = repr(value) if len(repr(value)) <= 24 else "the duration"
        raise ValueError(
            f"{shown} is longer than 20 years ({MAX_DURATION_S // 86400}d), "
            "the longest duration mlc accepts"
        )
    if isinstance(value, int | float):
        return value
    return int(seconds) if seconds == int(seconds) else seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(ge=0, le=MAX_DURATION_S),
    # the schema says what a spec file may hold (numbers or '30m'), not the parsed float
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S},
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


K8S_QUANTITY_MAX = 2**63 - 1
"""Kubernetes caps every quantity at 2**63 - 1 (in millicores for CPU, bytes for memory)."""


def _within_kubernetes(text: str, scale: int, unit: str) -> str:
    if quantities.quantity(text) * scale > K8S_QUANTITY_MAX:
        shown = repr(text) if len(text) <= 24 else f"a quantity of {len(text)} characters"
        raise ValueError(
            f"{shown} is more than Kubernetes can hold (2**63 - 1 {unit}); "
            "write e.g. '64Gi' or '16'"
        )
    return text


def _check_cpu(value: Any) -> Any:
    # QuantityError is a ValueError, so pydantic reports it at the key with its message.
    return _within_kubernetes(quantities.check_cpu(value), 1000, "millicores")


def _check_memory(value: Any) -> Any:
    return _within_kubernetes(quantities.check_memory(value), 1, "bytes")


def _quantity_schema(examples: list[str]) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": quantities.PATTERN},
            ],
            "examples": examples,
        }
    )


CpuQuantity = Annotated[str, BeforeValidator(_check_cpu), _quantity_schema(["2", "500m"])]
"""Kubernetes CPU quantity: cores (`2`, `0.5`, `1e3`) or millicores (`500m`)."""
MemoryQuantity = Annotated[
    str, BeforeValidator(_check_memory), _quantity_schema(["4Gi", "512Mi", "1.5Gi"])
]
"""Kubernetes memory quantity (`512Mi`, `1.5Gi`, `2G`; bytes when a plain number)."""

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
    count: int = Field(ge=1, le=INT32_MAX)
    """Number of GPUs per node."""
    type: str | None = None
    """Accelerator type, e.g. `nvidia-tesla-t4`, `nvidia-a100`, `nvidia-h100`."""


class Resources(StrictModel):
    cpu: CpuQuantity | None = None
    memory: MemoryQuantity | None = None
    gpu: GpuSpec | None = None
    nodes: int = Field(1, ge=1, le=INT32_MAX)
    """Number of nodes (machines) for distributed work."""
