"""One GDPR region rule: EU/EEA by default, adequacy countries only when the spec allows them.

The policy pass (MLC602) is the only place the rule lives; the consistency pass used to check
a looser notion of "Europe" again (MLC707), so London passed one check and failed the other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlc.compiler.api import check
from mlc.specs import clouds

REPO = Path(__file__).resolve().parents[2]
CREDIT = REPO / "examples" / "credit" / "mlc.yaml"
ADEQUACY = "+governance.data_residency={allow_adequacy: true}"


def region_diagnostics(*overrides: str) -> list[tuple[str, str, str]]:
    result = check(CREDIT, list(overrides))
    return [
        (d.code, d.path, d.message)
        for d in result.diagnostics
        if d.code in ("MLC602", "MLC707") or "gdpr" in d.message
    ]


def test_example_in_the_eea_passes() -> None:
    assert region_diagnostics() == []


def test_adequacy_country_needs_the_spec_to_allow_it() -> None:
    found = region_diagnostics("deployment.region=eu-west-2")
    assert [(code, path) for code, path, _ in found] == [("MLC602", "deployment.region")]
    assert "'eu-west-2' (aws)" in found[0][2] and "adequacy" in found[0][2]
    result = check(CREDIT, ["deployment.region=eu-west-2"])
    hint = next(d.hint for d in result.diagnostics if d.code == "MLC602")
    assert "governance.data_residency.allow_adequacy: true" in hint
    assert region_diagnostics("deployment.region=eu-west-2", ADEQUACY) == []


def test_outside_eea_and_adequacy_fails_even_when_adequacy_is_allowed() -> None:
    found = region_diagnostics("deployment.region=us-east-1", ADEQUACY)
    assert [(code, path) for code, path, _ in found] == [("MLC602", "deployment.region")]
    assert "serving and storage are placed in 'us-east-1'" in found[0][2]


@pytest.mark.parametrize(
    ("cloud", "region", "default", "with_adequacy"),
    [
        ("aws", "eu-west-1", True, True),  # Ireland
        ("aws", "eu-west-2", False, True),  # London
        ("aws", "eu-central-2", False, True),  # Zurich
        ("gcp", "europe-west6", False, True),  # Zurich
        ("azure", "norwayeast", True, True),  # EEA, not EU
        ("azure", "switzerlandnorth", False, True),
        ("aws", "ap-northeast-1", False, True),  # Tokyo
        ("aws", "us-east-1", False, False),
        ("gcp", "us-central1", False, False),
        ("onprem", "eu-south-3", True, True),  # named like an EU region, no table
        ("onprem", "eu-west-2", False, True),  # a name aws gives London
    ],
)
def test_region_rule(cloud: str, region: str, default: bool, with_adequacy: bool) -> None:
    assert clouds.gdpr_region_ok(cloud, region) is default
    assert clouds.gdpr_region_ok(cloud, region, allow_adequacy=True) is with_adequacy


def test_tables_are_disjoint_and_known() -> None:
    for cloud in clouds.CLOUDS:
        assert not clouds.EEA_REGIONS[cloud] & clouds.ADEQUACY_REGIONS[cloud]
        assert clouds.EEA_REGIONS[cloud] | clouds.ADEQUACY_REGIONS[cloud] <= clouds.REGIONS[cloud]
