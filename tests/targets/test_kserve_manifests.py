"""`--target kserve`: every strategy's manifests pass Kubernetes' and the CRDs' strict schemas."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import CREDIT
from support.crd import validate_custom
from support.manifests import emit, kinds, registry, validate_all

from mlc.compiler.api import check, compile_spec
from mlc.compiler.diagnostics import DiagnosticError

STRATEGIES = {
    "canary": [],
    "recreate": ["~deployment.strategy", "+deployment.strategy={kind:recreate}"],
    "ab": [
        "~deployment.strategy",
        "+deployment.strategy={kind:ab,variants:["
        "{name:control,weight:70,model_alias:champion},"
        "{name:treatment,weight:30,model_alias:challenger}]}",
    ],
    "shadow": ["~deployment.strategy", "+deployment.strategy={kind:shadow,mirror_percent:25}"],
    "blue_green": [
        "~deployment.strategy",
        "+deployment.strategy={kind:blue_green,bake_time:5m,"
        "rollback:[{metric:error_rate,threshold:0.05}]}",
    ],
}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_passes_strict_schemas(tmp_path: Path, strategy: str) -> None:
    files = emit(tmp_path, "kserve", STRATEGIES[strategy])
    assert validate_all(files) == []
    common = kinds({"common.yaml": files["common.yaml"]})
    assert common == [
        "DestinationRule",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]


def test_canary_runs_in_the_server(tmp_path: Path) -> None:
    # the in-server router advances the canary (see the target's docstring): one
    # InferenceService, no per-step manifests to apply
    files = emit(tmp_path, "kserve", [])
    assert not [p for p in files if p.startswith("rollout/")]
    (isvc,) = files["inferenceservice.yaml"]
    predictor = isvc["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    # the predictor runs `mlc serve` over the registry, not a copied model folder, with the
    # spec's strategy (no alias pinned) and the aliases re-resolved
    (container,) = predictor["containers"]
    assert container["command"] == ["mlc"] and container["args"][:2] == [
        "serve",
        "/project/mlc.yaml",
    ]
    assert "--alias" not in container["args"]
    assert container["args"][container["args"].index("--reload-interval") + 1] == "60"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["scaleTarget"]) == (
        1,
        2,
        70,
    )
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}


def test_common_objects_follow_security_and_identity(tmp_path: Path) -> None:
    files = emit(tmp_path, "kserve", [])
    by_kind = {d["kind"]: d for d in files["common.yaml"]}
    sa = by_kind["ServiceAccount"]
    assert sa["metadata"]["name"] == "credit-risk-serving"
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "${serving_identity}"}
    policy = by_kind["NetworkPolicy"]["spec"]
    assert policy["ingress"][0]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]
    binding = by_kind["RoleBinding"]
    assert binding["metadata"]["name"] == "credit-risk-release-manager"
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "risk-release"}
    ]
    assert by_kind["DestinationRule"]["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"
    (container,) = files["inferenceservice.yaml"][0]["spec"]["predictor"]["containers"]
    assert container["env"][0] == {
        "name": "MLFLOW_TRACKING_URI",
        "value": "http://mlflow.mlflow.svc:5000",
    }
    env = [e for e in container["env"] if "valueFrom" in e]
    assert env.pop()["name"] == "MLC_SERVE_ADMIN_TOKEN"  # optional: admin endpoints off without
    assert env == [
        {
            "name": "MLC_PSEUDONYM_KEY",
            "valueFrom": {
                "secretKeyRef": {"name": "vault-secret-data-credit-risk", "key": "pseudonym_key"}
            },
        }
    ]
    text = "".join((tmp_path / "kserve").rglob("*.yaml").__next__().read_text())
    assert "vault:" not in text


@pytest.mark.parametrize(
    ("cloud", "region", "annotation", "label"),
    [
        ("gcp", "europe-west1", "iam.gke.io/gcp-service-account", None),
        ("azure", "westeurope", "azure.workload.identity/client-id", "azure.workload.identity/use"),
    ],
)
def test_identity_binding_per_cloud(
    tmp_path: Path, cloud: str, region: str, annotation: str, label: str | None
) -> None:
    files = emit(tmp_path, "kserve", [f"deployment.cloud={cloud}", f"deployment.region={region}"])
    sa = next(d for d in files["common.yaml"] if d["kind"] == "ServiceAccount")
    assert sa["metadata"]["annotations"] == {annotation: "${serving_identity}"}
    if label:
        assert sa["metadata"]["labels"][label] == "true"
    assert validate_all(files) == []


def test_ab_shadow_blue_green_shapes(tmp_path: Path) -> None:
    ab = emit(tmp_path / "ab", "kserve", STRATEGIES["ab"])
    graph = ab["inferencegraph.yaml"][0]["spec"]["nodes"]["root"]
    assert graph["routerType"] == "Splitter"
    assert [(s["serviceName"], s["weight"]) for s in graph["steps"]] == [
        ("credit-risk-control", 70),
        ("credit-risk-treatment", 30),
    ]
    shadow = emit(tmp_path / "shadow", "kserve", STRATEGIES["shadow"])
    http = shadow["virtualservice.yaml"][0]["spec"]["http"][0]
    assert http["mirrorPercentage"] == {"value": 25.0}
    assert http["mirror"]["host"].startswith("credit-risk-shadow-predictor.")
    bg = emit(tmp_path / "bg", "kserve", STRATEGIES["blue_green"])
    weights = {
        path: [r["weight"] for r in docs[0]["spec"]["http"][0]["route"]]
        for path, docs in bg.items()
        if path.startswith("switch/")
    }
    assert weights == {"switch/to-blue.yaml": [100, 0], "switch/to-green.yaml": [0, 100]}
    assert [d["metadata"]["name"] for d in bg["inferenceservices.yaml"]] == [
        "credit-risk-blue",
        "credit-risk-green",
    ]


def test_gpu_and_scale_to_zero(tmp_path: Path) -> None:
    files = emit(
        tmp_path,
        "kserve",
        [
            "+deployment.resources.gpu={count:1,type:nvidia-tesla-t4}",
            "deployment.autoscaling.scale_to_zero=true",
            "deployment.autoscaling.min_replicas=0",
            "budgets.enforce=warn",
        ],
    )
    predictor = files["inferenceservice.yaml"][0]["spec"]["predictor"]
    assert predictor["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert predictor["nodeSelector"] == {"k8s.amazonaws.com/accelerator": "nvidia-tesla-t4"}
    assert predictor["minReplicas"] == 0
    assert validate_all(files) == []


def test_gpu_the_cloud_does_not_offer_is_located(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as exc:
        compile_spec(
            CREDIT,
            ["kserve"],
            tmp_path,
            ["+deployment.resources.gpu={count:1,type:nvidia-tesla-k80}"],
            registry(),
        )
    diag = next(d for d in exc.value.diagnostics if d.code == "MLC710")
    assert diag.path == "deployment.resources.gpu.type"
    assert diag.location is not None and diag.location.file == "<override>"
    assert "nvidia-tesla-t4" in diag.hint
    assert not (tmp_path / "kserve").exists()


def test_rollout_not_ending_at_100_is_located(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as exc:
        compile_spec(
            CREDIT, ["kserve"], tmp_path, ["deployment.strategy.steps=[10,50]"], registry()
        )
    diag = next(d for d in exc.value.diagnostics if d.code == "MLC352")
    assert diag.location is not None and "append 100" in diag.hint
    assert not tmp_path.joinpath("kserve").exists()


def test_platform_kserve_only(tmp_path: Path) -> None:
    result = check(CREDIT, ["deployment.platform=k8s"], ["kserve"], registry())
    errors = [d for d in result.diagnostics if d.code == "MLC410"]
    assert [d.path for d in errors] == ["deployment.platform"]


def test_strict_crd_check_rejects_unknown_fields(tmp_path: Path) -> None:
    files = emit(tmp_path, "kserve", [])
    doc = files["inferenceservice.yaml"][0]
    doc["spec"]["predictor"]["canaryPercent"] = 10
    assert any("canaryPercent" in e for e in validate_custom(doc))
    doc["spec"]["predictor"].pop("canaryPercent")
    doc["spec"]["predictor"]["containers"][0]["resources"]["limits"]["cpu"] = 2
    assert validate_custom(doc) == []
