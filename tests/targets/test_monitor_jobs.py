"""The closed loop on Kubernetes: the `mlc loop` CronJob, the log claim it shares with the
serving pods, and the pods that follow alias moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.manifests import emit, validate_all

from mlc.targets.k8s.monitor import runs_per_year

K8S = ["deployment.platform=k8s"]


def _cronjob(files: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    (cronjob,) = files["monitor/loop-cronjob.yaml"]
    assert cronjob["kind"] == "CronJob"
    return cronjob


def _serving_pods(files: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    pods = []
    for docs in files.values():
        for doc in docs:
            if doc["kind"] == "Deployment":
                pods.append(doc["spec"]["template"]["spec"])
            elif doc["kind"] == "InferenceService":
                pods.append(doc["spec"]["predictor"])
    assert pods
    return pods


@pytest.mark.parametrize(("target", "overrides"), [("k8s", K8S), ("kserve", [])])
def test_loop_cronjob_is_strict_valid_and_shares_the_log(
    tmp_path: Path, target: str, overrides: list[str]
) -> None:
    files = emit(tmp_path, target, overrides)
    assert validate_all(files) == []
    cronjob = _cronjob(files)
    spec = cronjob["spec"]
    # drift hourly beats performance daily: one CronJob, one loop at a time
    assert spec["schedule"] == "0 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert cronjob["metadata"]["annotations"]["mlc.dev/schedule-from"] == (
        "monitoring.drift.schedule"
    )
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert container["command"] == ["mlc"] and args[:2] == ["loop", "/project/mlc.yaml"]
    log_dir = args[args.index("--log-dir") + 1]
    serve_url = args[args.index("--serve-url") + 1]
    if target == "k8s":
        assert serve_url == "https://credit-risk.default.svc.cluster.local"
    else:
        assert serve_url == "http://credit-risk-predictor.default.svc.cluster.local"
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.mlflow.svc:5000"
    assert env["MLC_PUSHGATEWAY_URL"]["value"].startswith("http://prometheus-pushgateway.")
    assert env["MLC_AUDIT_URI"]["value"] == "/project/.mlc"
    assert env["MLC_PSEUDONYM_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "pseudonym_key"
    assert pod["serviceAccountName"] == "credit-risk-serving"
    assert job["backoffLimit"] == 0

    # the loop reads the very claim every serving pod writes its log to, at the same path
    (claim,) = files["predictions.yaml"]
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    name = claim["metadata"]["name"]

    def mounts(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        volumes = {v["name"]: v for v in pod["volumes"]}
        out = {}
        for mount in container["volumeMounts"]:
            claim_ref = volumes[mount["name"]].get("persistentVolumeClaim", {})
            if claim_ref.get("claimName") == name:
                out[mount["mountPath"]] = mount.get("subPath", "")
        return out

    assert mounts(pod, container) == {"/var/lib/mlc": "", "/project/.mlc": "state"}
    for serving in _serving_pods(files):
        (model,) = serving["containers"]
        assert mounts(serving, model) == mounts(pod, container)
        served_log = model["args"][model["args"].index("--log-dir") + 1]
        assert served_log == log_dir
        assert "emptyDir" not in str(serving["volumes"])


def test_canary_pods_serve_both_tracks_and_follow_aliases(tmp_path: Path) -> None:
    for target, overrides in (("k8s", K8S), ("kserve", [])):
        files = emit(tmp_path / target, target, overrides)
        for pod in _serving_pods(files):
            (model,) = pod["containers"]
            args = model["args"]
            # the in-server router runs the model canary: no alias pinned, aliases re-resolved
            assert "--alias" not in args, target
            assert args[args.index("--reload-interval") + 1] == "60", target
        # kserve: no per-step canaryTrafficPercent manifests, and no job may patch the service
        assert not any(p.startswith("rollout/") for p in files), target
        for docs in files.values():
            for doc in docs:
                if doc["kind"] == "Role":
                    for rule in doc["rules"]:
                        assert "patch" not in rule["verbs"] or doc["metadata"]["name"].endswith(
                            "release-manager"
                        )


def test_pinned_pods_follow_only_the_stable_alias(tmp_path: Path) -> None:
    files = emit(
        tmp_path,
        "kserve",
        [
            "~deployment.strategy",
            "+deployment.strategy={kind:blue_green,switch:manual,"
            "rollback:[{metric:error_rate,threshold:0.05}]}",
        ],
    )
    assert validate_all(files) == []
    seen = {}
    for pod in _serving_pods(files):
        (model,) = pod["containers"]
        args = model["args"]
        seen[args[args.index("--alias") + 1]] = "--reload-interval" in args
    # a candidate must not change under traffic while it is judged
    assert seen == {"champion": True, "challenger": False}


def test_no_monitoring_no_loop(tmp_path: Path) -> None:
    files = emit(
        tmp_path,
        "k8s",
        [*K8S, "~monitoring.drift", "~monitoring.performance", "~feedback.triggers"],
    )
    assert "monitor/loop-cronjob.yaml" not in files
    assert validate_all(files) == []


def test_performance_more_frequent_than_drift_wins(tmp_path: Path) -> None:
    files = emit(
        tmp_path,
        "k8s",
        [*K8S, "monitoring.drift.schedule=@daily", "monitoring.performance.schedule=*/15 * * * *"],
    )
    cronjob = _cronjob(files)
    assert cronjob["spec"]["schedule"] == "*/15 * * * *"
    assert cronjob["metadata"]["annotations"]["mlc.dev/schedule-from"] == (
        "monitoring.performance.schedule"
    )


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("*/15 * * * *", 4 * 24 * 365),
        ("0 9-17 * * 1-5", 9 * 261),  # 2027 has 261 weekdays
        ("30 2 1,15 * *", 24),
        ("0 0 1 1 *", 1),
        # cron ORs restricted day fields: 53 Fridays in 2027 plus twelve 13ths, one shared
        ("0 0 13 * 5", 12 + 53 - 1),
        ("@weekly", 52),
    ],
)
def test_runs_per_year(cron: str, expected: int) -> None:
    assert runs_per_year(cron) == expected
