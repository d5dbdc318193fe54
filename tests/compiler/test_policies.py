"""Every policy rule with a passing and a failing spec; data rules, policy folders, plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlc.compiler.api import check, compile_spec
from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, Severity
from mlc.compiler.passes.policies import entropy, find_secret, is_eu_region

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "tests" / "diff_pairs" / "nochange-identical" / "base.yaml"
CREDIT = REPO / "examples" / "credit" / "mlc.yaml"


def spec_with(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = BASE.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "mlc.yaml"
    path.write_text(text)
    return path


def diagnostics(path: Path) -> list[Diagnostic]:
    # literal secrets are refused by the validator, before any IR (and any other pass) exists
    try:
        return list(check(path).diagnostics)
    except DiagnosticError as exc:
        return list(exc.diagnostics)


def codes(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in diagnostics(path):
        if d.code.startswith("MLC6"):
            assert d.location is not None, d.render()
            out.setdefault(d.code, []).append(d.path)
    return out


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_example_passes_every_policy(overlay: str) -> None:
    result = check(CREDIT, [f"env={overlay}"])
    assert result.ok
    assert not [d for d in result.diagnostics if d.code.startswith("MLC6")]


def test_base_passes(tmp_path: Path) -> None:
    assert codes(BASE) == {}


PII_FAIL = (
    "{op: pseudonymise, columns: [email], key: 'env:MLC_PSEUDONYM_KEY', buckets: 1024}",
    "{op: scale, columns: [late_payments]}",
)


def test_pii_feature(tmp_path: Path) -> None:
    assert codes(spec_with(tmp_path, PII_FAIL)) == {"MLC601": ["data.contract.columns.email.pii"]}
    excluded = spec_with(
        tmp_path, PII_FAIL, ("exclude: [applicant_id, sex]", "exclude: [applicant_id, sex, email]")
    )
    assert codes(excluded) == {}


def test_gdpr_region(tmp_path: Path) -> None:
    assert codes(spec_with(tmp_path, ("region: eu-west-1", "region: us-east-1"))) == {
        "MLC602": ["deployment.region"]
    }
    assert codes(spec_with(tmp_path, ("region: eu-west-1", "region: eu-central-1"))) == {}
    assert is_eu_region("westeurope") and not is_eu_region("uksouth")
    # One notion of "EU" for every cloud: London and Zurich are outside the EU/EEA on aws and
    # gcp as on azure (before, their `eu-`/`europe-` names let them pass); Norway is EEA.
    london = codes(spec_with(tmp_path, ("region: eu-west-1", "region: eu-west-2")))
    assert london["MLC602"] == ["deployment.region"]
    assert not is_eu_region("europe-west6", "gcp") and not is_eu_region("eu-central-2", "aws")
    assert is_eu_region("norwayeast", "azure") and is_eu_region("eu-north-1", "aws")
    assert is_eu_region("eu-south-3", "onprem") and not is_eu_region("eu-west-2", "onprem")


def test_gdpr_retention(tmp_path: Path) -> None:
    failing = spec_with(
        tmp_path, ("retention: {data: 365d, models: 730d, logs: 90d}", "retention: {models: 730d}")
    )
    assert codes(failing) == {"MLC603": ["governance.retention.data"]}


HIPAA = ("compliance: [gdpr]", "compliance: [gdpr, hipaa]")


def test_hipaa(tmp_path: Path) -> None:
    assert codes(spec_with(tmp_path, HIPAA)) == {}
    enc = spec_with(
        tmp_path,
        HIPAA,
        (
            "encryption: {at_rest: true, in_transit: true}",
            "encryption: {at_rest: false, in_transit: false}",
        ),
    )
    assert codes(enc) == {
        "MLC604": ["security.encryption.at_rest", "security.encryption.in_transit"]
    }
    audit = spec_with(
        tmp_path, HIPAA, ("  network: {ingress", "  audit_logging: false\n  network: {ingress")
    )
    assert codes(audit) == {"MLC605": ["security.audit_logging"]}
    text = BASE.read_text()
    start = text.index("  access:\n")
    end = text.index("  secrets:\n")
    no_roles = spec_with(tmp_path, HIPAA, (text[start:end], ""))
    assert codes(no_roles) == {"MLC606": ["security.access"]}


def test_high_risk(tmp_path: Path) -> None:
    fairness = """  fairness:
    sensitive_attributes: [sex]
    metric: demographic_parity_difference
    threshold: 0.1
    mitigation: threshold_optimizer
"""
    assert codes(spec_with(tmp_path, (fairness, ""))) == {"MLC607": ["governance.fairness"]}
    assert codes(spec_with(tmp_path, ("  approvers: [model-risk@example.com]\n", ""))) == {
        "MLC608": ["governance.approvers"]
    }
    card = spec_with(
        tmp_path, ("    limitations: Trained on synthetic data; income is self-reported.\n", "")
    )
    assert codes(card) == {"MLC609": ["governance.model_card.limitations"]}
    low_risk = spec_with(
        tmp_path,
        ("  risk: high", "  risk: low"),
        (fairness, ""),
        ("  approvers: [model-risk@example.com]\n", ""),
    )
    assert codes(low_risk) == {}


def test_progressive_rollout(tmp_path: Path) -> None:
    rollback = """    rollback:
      - {metric: error_rate, op: '>', threshold: 0.02}
      - {metric: latency_p99_ms, op: '>', threshold: 250}
"""
    assert codes(spec_with(tmp_path, (rollback, ""))) == {
        "MLC611": ["deployment.strategy.rollback"]
    }
    text = BASE.read_text()
    alerts = text[text.index("  alerts:\n") : text.index("  dashboards:")]
    assert codes(spec_with(tmp_path, (alerts, ""))) == {"MLC612": ["monitoring.alerts"]}
    recreate = spec_with(
        tmp_path,
        (rollback, ""),
        (alerts, ""),
        (
            "    kind: canary\n    steps: [10, 50, 100]\n    bake_time: 10m\n",
            "    kind: recreate\n",
        ),
    )
    assert codes(recreate) == {}


SECRETS = [
    ("AKIA" + "IOSFODNN7EXAMPLE", "AWS access key id"),
    ("ghp_" + "a" * 20 + "B" * 16, "GitHub token"),
    ("xoxb-" + "123456789012-abcdefABCDEF", "Slack token"),
    ("-----BEGIN RSA " + "PRIVATE KEY-----", "private key"),
]


@pytest.mark.parametrize(("value", "kind"), SECRETS)
def test_literal_secret_patterns(tmp_path: Path, value: str, kind: str) -> None:
    spec = spec_with(
        tmp_path,
        (
            "tags: {team: risk, domain: lending}",
            f"tags: {{team: risk, domain: lending, note: '{value}'}}",
        ),
    )
    found = [d for d in diagnostics(spec) if d.code == "MLC610"]
    assert [d.path for d in found] == ["tags.note"] and kind in found[0].message
    assert value not in found[0].render()
    assert found[0].location is not None and found[0].location.line == 6
    with pytest.raises(DiagnosticError):
        compile_spec(spec, ["ir"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_secret_under_secret_like_key_and_in_urls(tmp_path: Path) -> None:
    token = "q8Zr2LmX9vT4kP7wN3sB"
    # Under tags: model params are checked against the estimator first (MLC326 for an unknown
    # name stops validation before the policy passes run).
    tags = "tags: {team: risk, domain: lending}"
    spec = spec_with(tmp_path, (tags, f"tags: {{team: risk, domain: lending, api_token: {token}}}"))
    assert codes(spec) == {"MLC610": ["tags.api_token"]}
    # any literal under a secret's name is refused, short or not ('hunter2' is a password too);
    # a reference, or a key that only mentions tokens, is fine
    short = spec_with(tmp_path, (tags, "tags: {team: risk, domain: lending, api_token: short}"))
    assert codes(short) == {"MLC610": ["tags.api_token"]}
    calm = spec_with(
        tmp_path,
        (tags, "tags: {team: risk, api_token: 'env:API_TOKEN', token_budget: '1000'}"),
    )
    assert codes(calm) == {}
    assert find_secret("url", "postgresql://app:hunter2@db/prod") == "password in a URL"
    assert find_secret("url", "postgresql://app@db/prod") is None
    assert find_secret("key", "vault:secret/data/app#key") is None
    assert entropy("aaaa") == 0.0


def test_org_policy_file_and_policy_folder(tmp_path: Path) -> None:
    rule = (
        "policies:\n  - id: two-replicas\n    code: MLC690\n    message: high-risk models "
        "serve from two replicas\n    when: {governance.risk: {eq: high}}\n"
        "    require: {deployment.autoscaling.min_replicas: {gte: 2}}\n"
    )
    spec = spec_with(tmp_path)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "org.yaml").write_text(rule)
    assert codes(spec) == {"MLC690": ["deployment.autoscaling.min_replicas"]}
    (tmp_path / "policies" / "org.yaml").write_text(rule.replace("gte: 2", "gte: 1"))
    assert codes(spec) == {}
    (tmp_path / "policies" / "org.yaml").write_text(
        "policies:\n  - {id: x, message: y, require: {a: {bigger: 1}}}\n"
    )
    found = [d for d in check(spec).diagnostics if d.code == "MLC621"]
    assert found and "bigger" in found[0].message and "org.yaml" in found[0].message


def _plugin(tmp_path: Path, body: str, module: str) -> Path:
    site = tmp_path / "site"
    dist = site / "orgpolicy-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: orgpolicy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[mlc.policies]\nowners = {module}:check\n")
    (site / f"{module}.py").write_text(body)
    return site


def test_python_policy_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = _plugin(
        tmp_path,
        (
            "from mlc.compiler.diagnostics import Severity\n"
            "def check(ir, ctx):\n"
            "    if ir.name.startswith('credit'):\n"
            "        yield ctx.diag('MLC691', 'credit models need a second owner', 'owners',\n"
            "                       'add an owner', Severity.WARNING)\n"
        ),
        "orgpolicy_ok",
    )
    monkeypatch.syspath_prepend(str(site))
    found = [d for d in check(BASE).diagnostics if d.code == "MLC691"]
    assert found and found[0].location is not None and found[0].severity is Severity.WARNING


def test_plugin_that_raises_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = _plugin(
        tmp_path, "def check(ir, ctx):\n    raise RuntimeError('boom')\n", "orgpolicy_boom"
    )
    monkeypatch.syspath_prepend(str(site))
    result = check(BASE)
    found = [d for d in result.diagnostics if d.code == "MLC622"]
    assert found and "owners" in found[0].message and "orgpolicy" in found[0].message
    assert "boom" in found[0].message and not result.ok
