"""The Argo `AnalysisTemplate` of the k8s target: no data is no verdict, and every query reads
series that really exist — evaluated by promtool over the series `mlc serve` renders."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.manifests import emit, validate_all
from support.tools import require_tool

from mlc.runtime import metrics_contract as mc
from mlc.runtime.serving.metrics import ServingMetrics

ROLLBACK = (
    "deployment.strategy.rollback=[{metric: error_rate, op: '>', threshold: 0.02},"
    "{metric: latency_p99_ms, op: '>', threshold: 250},"
    "{metric: drift_score, op: '>', threshold: 0.3}]"
)
K8S = ["deployment.platform=k8s", ROLLBACK]
CANARY, STABLE = "7d9f8c6b5", "5c4b3a291"
"""Pod-template hashes of the new and the old ReplicaSet."""


def _template(tmp_path: Path) -> dict[str, Any]:
    files = emit(tmp_path, "k8s", K8S)
    assert validate_all(files) == []
    rollout, template = files["rollout.yaml"]
    (arg,) = rollout["spec"]["strategy"]["canary"]["analysis"]["args"]
    assert arg == {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}
    assert template["spec"]["args"] == [{"name": "canary-hash"}]
    return {m["name"]: m for m in template["spec"]["metrics"]}


def _holds(condition: str, result: list[float]) -> bool:
    """Argo's expression language for the operators the target writes (&&, ||, !, len)."""
    python = condition.replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"!\(", "not (", python)
    return bool(eval(python, {"len": len}, {"result": result}))


def _verdict(metric: dict[str, Any], result: list[float]) -> str:
    ok = _holds(metric["successCondition"], result)
    bad = _holds(metric["failureCondition"], result)
    assert not (ok and bad), (metric["name"], result)
    return "Successful" if ok else "Failed" if bad else "Inconclusive"


def test_no_data_is_inconclusive_never_success(tmp_path: Path) -> None:
    metrics = _template(tmp_path)
    assert set(metrics) == {"error-rate", "latency-p99-ms", "drift-score"}
    for name, healthy, sick in (
        ("error-rate", 0.01, 0.05),
        ("latency-p99-ms", 0.2, 0.3),
        ("drift-score", 0.1, 0.5),
    ):
        metric = metrics[name]
        assert _verdict(metric, []) == "Inconclusive", name
        assert _verdict(metric, [healthy]) == "Successful", name
        assert _verdict(metric, [sick]) == "Failed", name
        # the threshold itself is healthy: rollback is `> threshold`
        threshold = float(metric["successCondition"].rsplit(" ", 1)[1])
        assert _verdict(metric, [threshold]) == "Successful", name
        assert metric["failureLimit"] == 0 and metric["inconclusiveLimit"] >= 1


def _pod_series(pod: str, errors: int, slow: int, total: int) -> dict[str, int]:
    """Series `mlc serve` renders after one minute of traffic on `pod`: `total` requests,
    `errors` of them 500s, `slow` answered in 0.3 s and the rest in 0.07 s."""
    served = ServingMetrics()
    labels = {"model": "credit-risk", "version": "3"}
    for i in range(total):
        code = "500" if i < errors else "200"
        served.requests.inc(code=code, **labels)
        served.duration.observe(0.3 if i < slow else 0.07, **labels)
        if code == "500":
            served.errors.inc(**labels)
    out = {}
    for line in served.render().splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        series, value = line.rsplit(" ", 1)
        out[series[:-1] + f',pod="{pod}"}}'] = int(float(value))
    return out


def _quantile(q: float, bounds: list[float], counts: list[float]) -> float:
    """Prometheus' histogram_quantile: linear within the bucket holding the rank."""
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    raise AssertionError("rank beyond the last bucket")


def test_queries_read_exported_series_and_measure_the_canary(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    metrics = _template(tmp_path)
    queries = {n: m["provider"]["prometheus"]["query"] for n, m in metrics.items()}
    exported = {s.split("{")[0] for s in _pod_series("p", 1, 1, 2)}
    for name, query in queries.items():
        series = set(re.findall(r"\bmlc_[a-z_]+", query))
        if name == "drift-score":
            # pushed by the loop's monitor pass, never by the server
            assert series == {mc.FEATURE_DRIFT_SCORE} and not series & exported
        else:
            assert series and series <= exported, (name, series - exported)
            assert "{{args.canary-hash}}" in query

    # canary: 20 requests a minute, 1 error, 1 slow; stable: healthy, to prove the selector
    canary = _pod_series(f"credit-risk-{CANARY}-x2v9q", errors=1, slow=1, total=20)
    stable = _pod_series(f"credit-risk-{STABLE}-k8d2w", errors=0, slow=0, total=40)
    series = [{"series": s, "values": f"0+{v}x10"} for s, v in {**canary, **stable}.items()]
    series.append(
        {"series": 'mlc_feature_drift_score{model="credit-risk",feature="age"}', "values": "0.4x10"}
    )
    series.append(
        {
            "series": 'mlc_feature_drift_score{model="credit-risk",feature="debt"}',
            "values": "0.1x10",
        }
    )
    bounds = [*mc.LATENCY_BUCKETS_SECONDS, float("inf")]
    counts = [19.0 if b < 0.3 else 20.0 for b in bounds[:-1]]
    counts = [0.0 if b < 0.07 else c for b, c in zip(bounds, counts, strict=False)] + [20.0]
    expected = {
        "error-rate": 1 / 20,
        "latency-p99-ms": _quantile(0.99, bounds[:-1], counts[:-1]),
        "drift-score": 0.4,
    }
    tests = []
    for name, query in queries.items():
        # the drift gauge is per model, not per pod: any hash gets it; the others are empty
        # for a hash no pod has (no traffic), never 0 or NaN
        elsewhere = expected[name] if name == "drift-score" else None
        for hash_, value in ((CANARY, expected[name]), ("0000000000", elsewhere)):
            # promtool compares exactly: compare micro-units
            expr = "round(1e6 * (" + query.replace("{{args.canary-hash}}", hash_) + "))"
            samples = [] if value is None else [{"labels": "{}", "value": round(value * 1e6)}]
            tests.append({"expr": expr, "eval_time": "10m", "exp_samples": samples})
    (tmp_path / "analysis.test.yaml").write_text(
        yaml.safe_dump(
            {
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
            }
        )
    )
    proc = subprocess.run(
        [promtool, "test", "rules", "analysis.test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert expected["latency-p99-ms"] == pytest.approx(0.25 + 0.25 * 0.8)
