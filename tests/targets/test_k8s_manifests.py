"""`--target k8s`: Deployment/Service/HPA and an Argo Rollout whose analysis rolls back."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import CREDIT
from support.manifests import emit, kinds, registry, validate_all

from mlc.compiler.api import compile_spec
from mlc.compiler.diagnostics import DiagnosticError

K8S = ["deployment.platform=k8s"]


def test_canary_rollout_steps_pauses_and_analysis(tmp_path: Path) -> None:
    files = emit(tmp_path, "k8s", K8S)
    assert validate_all(files) == []
    assert kinds(files) == [
        "AnalysisTemplate",
        "CronJob",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Rollout",
        "Service",
        "Service",
        "ServiceAccount",
    ]
    rollout, template = files["rollout.yaml"]
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["steps"] == [
        {"setWeight": 10},
        {"pause": {"duration": "600s"}},
        {"setWeight": 50},
        {"pause": {"duration": "600s"}},
        {"setWeight": 100},
    ]
    assert canary["analysis"]["templates"] == [{"templateName": "credit-risk"}]
    assert rollout["spec"]["workloadRef"]["name"] == "credit-risk"
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert set(metrics) == {"error-rate", "latency-p99-ms"}
    # no data is inconclusive (tests/targets/test_analysis_template.py evaluates them)
    assert metrics["error-rate"]["successCondition"] == "len(result) > 0 && result[0] <= 0.02"
    assert metrics["latency-p99-ms"]["successCondition"].endswith("result[0] <= 0.25")
    assert metrics["latency-p99-ms"]["provider"]["prometheus"]["query"].startswith(
        "histogram_quantile(0.99, sum by (le) (rate(mlc_request_duration_seconds_bucket{"
    )
    hpa = files["hpa.yaml"][0]["spec"]
    assert hpa["scaleTargetRef"]["kind"] == "Rollout"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 2)
    container = files["deployment.yaml"][0]["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {
        "/etc/mlc/tls": "tls",
        "/var/lib/mlc": "predictions",
        "/project/.mlc": "predictions",
    }
    assert container["args"][-4:] == [
        "--tls-cert",
        "/etc/mlc/tls/tls.crt",
        "--tls-key",
        "/etc/mlc/tls/tls.key",
    ]
    secret_env = [e for e in container["env"] if "valueFrom" in e]
    assert secret_env[0]["valueFrom"]["secretKeyRef"]["name"] == "vault-secret-data-credit-risk"


def test_blue_green_and_recreate(tmp_path: Path) -> None:
    bg = emit(
        tmp_path / "bg",
        "k8s",
        [
            *K8S,
            "~deployment.strategy",
            "+deployment.strategy={kind:blue_green,switch:manual,"
            "rollback:[{metric:error_rate,threshold:0.05}]}",
        ],
    )
    assert validate_all(bg) == []
    blue_green = bg["rollout.yaml"][0]["spec"]["strategy"]["blueGreen"]
    assert blue_green["autoPromotionEnabled"] is False
    assert blue_green["previewService"] == "credit-risk-preview"
    assert blue_green["prePromotionAnalysis"]["templates"] == [{"templateName": "credit-risk"}]
    plain = emit(
        tmp_path / "plain",
        "k8s",
        [*K8S, "~deployment.strategy", "+deployment.strategy={kind:recreate}"],
    )
    assert validate_all(plain) == []
    assert "rollout.yaml" not in plain
    assert plain["deployment.yaml"][0]["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        (
            ["~deployment.strategy", "+deployment.strategy={kind:shadow}"],
            "deployment.strategy.kind",
        ),
        (["deployment.autoscaling.scale_to_zero=true"], "deployment.autoscaling.scale_to_zero"),
        ([], "deployment.platform"),
    ],
)
def test_what_plain_kubernetes_cannot_express_is_located(
    tmp_path: Path, overrides: list[str], path: str
) -> None:
    base = [] if path == "deployment.platform" else K8S
    with pytest.raises(DiagnosticError) as exc:
        compile_spec(CREDIT, ["k8s"], tmp_path, [*base, *overrides], registry())
    errors = [d for d in exc.value.diagnostics if d.code == "MLC410"]
    assert [d.path for d in errors] == [path]
    assert errors[0].location is not None
    assert not (tmp_path / "k8s").exists()
