"""The pricing table: per cloud and region, instance types with size and $/hour.

The shipped table is `pricing.json` beside this module; it states its date and source. A table of
the same shape can be passed instead (`mlc cost --pricing FILE`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError
from mlc.specs import quantities

DEFAULT_PRICING = Path(__file__).with_name("pricing.json")


@dataclass(frozen=True)
class Instance:
    """One priced machine type."""

    name: str
    vcpu: float
    memory_gib: float
    gpu_count: int
    gpu_type: str | None
    on_demand: float
    """USD per hour, on demand."""
    spot: float
    """USD per hour, spot / preemptible."""

    def price(self, spot: bool = False) -> float:
        return self.spot if spot else self.on_demand


@dataclass(frozen=True)
class PricingTable:
    """A loaded pricing table: `instances(cloud, region)` and the assumptions it ships with."""

    name: str
    """Where the table came from (shown in diagnostics)."""
    version: str
    date: str
    source: str
    assumptions: dict[str, float]
    clouds: dict[str, dict[str, Any]]

    def regions(self, cloud: str) -> list[str]:
        return sorted(self.clouds.get(cloud, {}).get("regions", {}))

    def region(self, cloud: str, region: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.clouds.get(cloud, {}).get("regions", {}).get(region)
        return found

    def instances(self, cloud: str, region: str) -> list[Instance]:
        reg = self.region(cloud, region) or {}
        return [
            Instance(
                name=name,
                vcpu=float(row["vcpu"]),
                memory_gib=float(row["memory_gib"]),
                gpu_count=int(row.get("gpu_count") or 0),
                gpu_type=row.get("gpu_type"),
                on_demand=float(row["on_demand"]),
                spot=float(row.get("spot", row["on_demand"])),
            )
            for name, row in sorted(reg.get("instances", {}).items())
        ]

    def storage_price(self, cloud: str, region: str) -> float:
        reg = self.region(cloud, region) or {}
        return float(reg.get("storage_gb_month", 0.0))

    def assume(self, key: str) -> float:
        return float(self.assumptions[key])


_REQUIRED_ASSUMPTIONS = (
    "default_cpu",
    "default_memory_gib",
    "default_training_hours",
    "hours_per_month",
    "monitoring_job_hours",
    "scale_to_zero_active_fraction",
    "storage_gb",
)


def _bad(name: str, message: str) -> DiagnosticError:
    return DiagnosticError(
        [
            Diagnostic(
                "MLC633",
                f"pricing table {name}: {message}",
                None,
                "compare it with the shipped compiler/cost/pricing.json",
            )
        ]
    )


@lru_cache(maxsize=8)
def _load(path: str) -> PricingTable:
    name = Path(path).name if Path(path) == DEFAULT_PRICING else path
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _bad(name, "file not found") from None
    except (OSError, ValueError) as exc:
        raise _bad(name, f"cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise _bad(name, "the top level must be an object")
    for key in ("pricing_version", "date", "source", "assumptions", "clouds"):
        if key not in raw:
            raise _bad(name, f"missing '{key}'")
    missing = [k for k in _REQUIRED_ASSUMPTIONS if k not in raw["assumptions"]]
    if missing:
        raise _bad(name, "assumptions lack " + ", ".join(missing))
    for cloud, body in raw["clouds"].items():
        for region, reg in body.get("regions", {}).items():
            for inst, row in reg.get("instances", {}).items():
                for field in ("vcpu", "memory_gib", "on_demand"):
                    if not isinstance(row.get(field), int | float):
                        raise _bad(name, f"{cloud}/{region}/{inst} lacks a numeric '{field}'")
    return PricingTable(
        name,
        str(raw["pricing_version"]),
        str(raw["date"]),
        str(raw["source"]),
        {k: float(v) for k, v in raw["assumptions"].items()},
        raw["clouds"],
    )


def load_pricing(path: str | Path | None = None) -> PricingTable:
    """Load a pricing table (the shipped one by default).

    Raises:
        DiagnosticError: the file is missing or malformed.
    """
    return _load(str(path or DEFAULT_PRICING))


def memory_gib(quantity: str | None) -> float | None:
    """Kubernetes memory quantity in GiB; None when unset or not a quantity.

    >>> memory_gib("512Mi"), memory_gib("1.5Gi"), memory_gib("lots")
    (0.5, 1.5, None)
    """
    if quantity is None:
        return None
    try:
        return quantities.memory_gib(quantity)
    except quantities.QuantityError:
        return None


def cpu_cores(quantity: str | None) -> float | None:
    """Kubernetes CPU quantity in cores; None when unset or not a quantity.

    >>> cpu_cores("500m"), cpu_cores("2"), cpu_cores("two")
    (0.5, 2.0, None)
    """
    if quantity is None:
        return None
    try:
        return quantities.cpu_cores(quantity)
    except quantities.QuantityError:
        return None
