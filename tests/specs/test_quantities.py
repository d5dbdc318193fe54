"""One parser for CPU and memory quantities, on Kubernetes' grammar, read alike everywhere.

The spec validates with `mlc.specs.quantities`; kfp, kserve/k8s (through the IR), terraform's
managed instances and the cost model read values through it. Before, four parsers disagreed:
kfp's turned `1.5Gi` into `memoryLimit: 0.0` and `1e3` into an exception.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlc.compiler.cost.pricing import cpu_cores as priced_cores
from mlc.compiler.cost.pricing import memory_gib as priced_gib
from mlc.compiler.ir import Resources
from mlc.specs import quantities
from mlc.specs._base import Resources as SpecResources
from mlc.targets import _cloud
from mlc.targets.kfp import KfpOptions
from mlc.targets.kfp.platform import resources_spec

REPO = Path(__file__).resolve().parents[2]

# (text, exact value): CPU in cores, memory in bytes; computed by hand from the unit tables.
VALID = [
    ("1.5Gi", Decimal(3 * 2**29)),
    ("500Mi", Decimal(500 * 2**20)),
    ("2G", Decimal(2 * 10**9)),
    ("250m", Decimal("0.25")),
    ("0.5", Decimal("0.5")),
    ("1e3", Decimal(1000)),
    ("1E3", Decimal(1000)),
    ("2k", Decimal(2000)),
    (".5", Decimal("0.5")),
    ("5.", Decimal(5)),
    ("1Ei", Decimal(2**60)),
    ("1E", Decimal(10**18)),
    ("100u", Decimal("0.0001")),
    ("3", Decimal(3)),
]
INVALID = ["1K", "2GB", "-1", "+1", "", "Gi", "1.2.3", "1e", "1 Gi", "two", "1gi", "1e3Mi"]


@pytest.mark.parametrize(("text", "value"), VALID)
def test_kubernetes_grammar_values(text: str, value: Decimal) -> None:
    assert quantities.quantity(text) == value


@pytest.mark.parametrize(("text", "value"), VALID)
def test_agrees_with_the_kubernetes_client(text: str, value: Decimal) -> None:
    kubernetes_quantity = pytest.importorskip("kubernetes.utils.quantity")
    assert quantities.quantity(text) == kubernetes_quantity.parse_quantity(text)


@pytest.mark.parametrize("text", INVALID)
def test_outside_the_grammar_is_refused(text: str) -> None:
    with pytest.raises(quantities.QuantityError, match="not a Kubernetes quantity"):
        quantities.quantity(text)


def test_hints_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"lower-case 'k': '1k', or '1Ki'"):
        quantities.check_memory("1K")
    with pytest.raises(ValueError, match=r"'2Gi' in binary or '2G' in decimal"):
        quantities.check_memory("2GB")
    with pytest.raises(ValueError, match="cannot be negative"):
        quantities.check_cpu("-1")
    with pytest.raises(ValueError, match=r"fraction of a byte.*'500Mi'"):
        quantities.check_memory("500m")


def test_conversions() -> None:
    assert quantities.cpu_cores("250m") == 0.25
    assert quantities.cpu_cores(2) == 2.0 and quantities.cpu_cores("1e3") == 1000.0
    assert quantities.memory_bytes("1.5Gi") == 1_610_612_736
    assert quantities.memory_bytes("1.3Ki") == 1332  # rounded up to a whole byte, as k8s does
    assert quantities.memory_gib("500Mi") == 500 / 1024
    assert quantities.memory_gb("2G") == 2.0


def test_spec_accepts_and_rejects_by_the_same_grammar() -> None:
    res = SpecResources(cpu="1e3", memory="1.5Gi")
    assert (res.cpu, res.memory) == ("1e3", "1.5Gi")
    assert SpecResources(cpu=0.5, memory="2G").cpu == "0.5"
    for bad in ({"memory": "1K"}, {"memory": "500m"}, {"cpu": "2 cores"}, {"cpu": "-1"}):
        with pytest.raises(ValidationError):
            SpecResources(**bad)


def test_schema_pattern_is_the_parser_pattern() -> None:
    schema = json.loads((REPO / "specs/mlc.schema.json").read_text())
    text = json.dumps(schema)
    assert json.dumps(quantities.PATTERN)[1:-1] in text
    pattern = re.compile(quantities.PATTERN)
    assert all(pattern.match(t) for t, _ in VALID)
    assert not any(pattern.match(t) for t in INVALID)


def test_kfp_memory_limit_regression() -> None:
    # kfp's own parser read only whole numbers: `1.5Gi` became `memoryLimit: 0.0`.
    spec = resources_spec(Resources(cpu="1e3", memory="1.5Gi"), KfpOptions())
    assert spec is not None
    assert spec["memoryLimit"] == spec["memoryRequest"] == 1.610612736
    assert spec["resourceMemoryLimit"] == "1.5Gi"
    assert spec["cpuLimit"] == 1000.0
    whole = resources_spec(Resources(cpu="250m", memory="500Mi"), KfpOptions())
    assert whole is not None
    assert whole["memoryLimit"] == 500 * 2**20 / 1e9 and whole["cpuLimit"] == 0.25


def test_every_consumer_reads_the_same_value() -> None:
    assert priced_gib("1.5Gi") == 1.5 and priced_cores("250m") == 0.25
    assert priced_gib("lots") is None and priced_cores(None) is None
    # 1.5Gi fits the smallest managed instance (8 GiB); 9Gi does not, 1e3 cores fits none.
    assert _cloud.managed_instance("aws", "250m", "1.5Gi") == "ml.m5.large"
    assert _cloud.managed_instance("aws", "2", "9Gi") == "ml.m5.xlarge"
    assert _cloud.managed_instance("aws", "1e3", "1Gi") == "ml.m5.12xlarge"
