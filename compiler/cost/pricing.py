"""The pricing table: per cloud and region, instance types with size and $/hour.

The shipped table is `pricing.json` beside this module; it states its date and source. A table of
the same shape can be passed instead (`mlc cost --pricing FILE`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError

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


_MEM = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEM_GIB = {
    "Ki": 2**-20,
    "Mi": 2**-10,
    "Gi": 1.0,
    "Ti": 1024.0,
    "K": 1e3 / 2**30,
    "M": 1e6 / 2**30,
    "G": 1e9 / 2**30,
    "T": 1e12 / 2**30,
    None: 1 / 2**30,
}


def memory_gib(quantity: str | None) -> float | None:
    """Kubernetes memory quantity in GiB.

    >>> memory_gib("512Mi")
    0.5
    """
    if quantity is None:
        return None
    match = _MEM.match(quantity)
    if not match:
        return None
    return float(match.group(1)) * _MEM_GIB[match.group(2)]


def cpu_cores(quantity: str | None) -> float | None:
    """Kubernetes CPU quantity in cores.

    >>> cpu_cores("500m")
    0.5
    """
    if quantity is None:
        return None
    if quantity.endswith("m"):
        return float(quantity[:-1]) / 1000
    return float(quantity)
