"""Spark on a cluster: the kfp target's SparkApplications (launched and awaited by a launcher
component) and the k8s target's ScheduledSparkApplication for batch scoring, strictly checked
against the Spark Operator's CRDs; the launcher against a fake API server."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from support import EXAMPLES
from support.crd import validate_custom
from support.manifests import K8S_VERSION

from mlc.compiler.api import compile_spec
from mlc.runtime.context import StepError
from mlc.runtime.spark import launcher

CREDIT = EXAMPLES / "credit" / "mlc.yaml"
SPARK = ("+split=hash", "+engine=spark")
DATA_STEPS = ("ingest-applications", "validate", "split", "features")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _template(source: str) -> dict[str, Any]:
    """The SparkApplication embedded in a launcher component's source."""
    start = source.index("mlc_json.loads('") + len("mlc_json.loads('")
    literal = source[start - 1 : source.index("')\n", start) + 1]
    template: dict[str, Any] = json.loads(ast.literal_eval(literal))
    return template


def _executors(out: Path) -> dict[str, Any]:
    executors: dict[str, Any] = _docs(out / "kfp" / "pipeline.yaml")[0]["deploymentSpec"][
        "executors"
    ]
    return executors


def test_kfp_runs_the_spark_steps_as_strict_spark_applications(tmp_path: Path) -> None:
    compile_spec(CREDIT, ["kfp"], tmp_path, SPARK)
    executors = _executors(tmp_path)
    for step in DATA_STEPS:
        source = executors[f"exec-{step}"]["container"]["command"][-1]
        assert "import mlc.runtime.spark.launcher as mlc_launcher" in source, step
        app = _template(source)
        assert validate_custom(app) == [], step
        assert app["kind"] == "SparkApplication" and app["metadata"]["labels"]["mlc/step"] == step
        spec = app["spec"]
        assert spec["type"] == "Python" and spec["mainApplicationFile"].endswith("driver.py")
        # data.spark.conf of the overlay becomes the application's sparkConf
        assert spec["sparkConf"] == {"spark.sql.shuffle.partitions": "4"}
        assert spec["driver"]["serviceAccount"] == "mlc-spark-driver"
        claim = spec["volumes"][0]["persistentVolumeClaim"]["claimName"]
        assert claim == "mlc-shared"
        # the launcher pod asks for no resources: the driver and executors get them
        assert "resources" not in executors[f"exec-{step}"]["container"]
    # pandas steps after the split stay ordinary components
    assert (
        "mlc.runtime.spark import launcher"
        not in executors["exec-train"]["container"]["command"][-1]
    )


def test_pandas_spec_has_no_spark_application(tmp_path: Path) -> None:
    compile_spec(CREDIT, ["kfp"], tmp_path, ())
    for name, executor in _executors(tmp_path).items():
        assert "SparkApplication" not in executor["container"]["command"][-1], name


def test_spark_rbac_lets_the_launcher_and_the_driver_do_their_parts() -> None:
    from mlc.targets.kfp import KfpOptions
    from mlc.targets.kfp.spark import rbac

    docs = rbac(KfpOptions())
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    launcher_rules = roles["mlc-spark-launcher"]["rules"]
    assert {"create", "get"} <= set(launcher_rules[0]["verbs"])
    assert launcher_rules[0]["resources"] == ["sparkapplications"]
    assert "pods" in roles["mlc-spark-driver"]["rules"][0]["resources"]
    bound = {
        d["roleRef"]["name"]: d["subjects"][0]["name"] for d in docs if d["kind"] == "RoleBinding"
    }
    assert bound == {
        "mlc-spark-launcher": "pipeline-runner",
        "mlc-spark-driver": "mlc-spark-driver",
    }


def test_k8s_schedules_spark_batch_scoring_as_a_scheduled_spark_application(tmp_path: Path) -> None:
    compile_spec(CREDIT, ["k8s"], tmp_path, (*SPARK, "+serving=batch"))
    batch = tmp_path / "k8s" / "batch"
    assert not (batch / "cronjob.yaml").exists()
    docs = _docs(batch / "scheduledsparkapplication.yaml")
    (app,) = [d for d in docs if d["kind"] == "ScheduledSparkApplication"]
    assert validate_custom(app) == []
    for doc in docs:
        if doc is not app:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert app["spec"]["schedule"] == "0 2 * * *" and app["spec"]["concurrencyPolicy"] == "Forbid"
    template = app["spec"]["template"]
    args = template["arguments"]
    assert args[:2] == ["batch", "/project/mlc.yaml"]
    assert args[args.index("--input") + 1] == "data/applications.csv"
    secret_env = [e for e in template["driver"]["env"] if "valueFrom" in e]
    assert {e["name"] for e in secret_env} == {"MLC_PSEUDONYM_KEY"}
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["subjects"][0]["name"] == template["driver"]["serviceAccount"]


class _FakeApi:
    """The API server as the launcher uses it: records the application, then reports the
    states one poll at a time; `on_create` plays the driver's part."""

    def __init__(self, states: list[dict[str, str]], on_create: Any = None) -> None:
        self.created: list[dict[str, Any]] = []
        self.states = states
        self.on_create = on_create

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        assert (group, version, plural) == ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
        self.created.append(json.loads(json.dumps(body)))
        if self.on_create is not None:
            self.on_create(body)
        return body

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        assert name == self.created[-1]["metadata"]["name"]
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {**self.created[-1], "status": {"applicationState": state}}


def _split_template(tmp_path: Path) -> dict[str, Any]:
    compile_spec(CREDIT, ["kfp"], tmp_path / "out", SPARK)
    source = _executors(tmp_path / "out")["exec-split"]["container"]["command"][-1]
    template = _template(source)
    template["metadata"]["annotations"]["mlc/shared-path"] = str(tmp_path / "shared")
    return template


def test_launcher_submits_the_step_and_returns_the_drivers_outputs(tmp_path: Path) -> None:
    template = _split_template(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "_meta.json").write_text("{}")

    def driver(body: dict[str, Any]) -> None:
        args = body["spec"]["arguments"]
        outputs = args[args.index("--outputs") + 1 :]
        for pair in outputs:
            name, _, where = pair.partition("=")
            Path(where).mkdir(parents=True)
            (Path(where) / "_meta.json").write_text(json.dumps({"part": name}))

    api = _FakeApi([{"state": "SUBMITTED"}, {"state": "RUNNING"}, {"state": "COMPLETED"}], driver)
    outs = {"train": str(tmp_path / "train"), "test": str(tmp_path / "test")}
    launcher.launch(
        template,
        {"method": "hash"},
        {"dataset": str(tmp_path / "in")},
        outs,
        project_dir="/project",
        step="split",
        api=api,
        sleep=lambda s: None,
    )
    (body,) = api.created
    assert validate_custom(body) == []
    args = body["spec"]["arguments"]
    assert args[:2] == ["step", "split"] and json.loads(args[3]) == {"method": "hash"}
    for name, where in outs.items():
        assert json.loads((Path(where) / "_meta.json").read_text()) == {"part": name}
    assert not (tmp_path / "shared" / body["metadata"]["name"]).exists()


def test_launcher_failures_name_the_application_and_what_was_said(tmp_path: Path) -> None:
    template = _split_template(tmp_path)
    api = _FakeApi(
        [{"state": "FAILED", "errorMessage": "driver container failed with ExitCode: 1"}]
    )
    with pytest.raises(StepError) as info:
        launcher.launch(
            template, {}, {}, {}, project_dir="/p", step="split", api=api, sleep=lambda s: None
        )
    text = str(info.value)
    assert "SparkApplication kubeflow/split-" in text and "ExitCode: 1" in text

    class Refusing(_FakeApi):
        def create_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
            class Refused(Exception):
                body = json.dumps(
                    {"message": 'sparkapplications is forbidden: User "x" cannot create'}
                )

            raise Refused()

    with pytest.raises(StepError, match=r"refused SparkApplication .* is forbidden"):
        launcher.launch(
            template,
            {},
            {},
            {},
            project_dir="/p",
            step="split",
            api=Refusing([]),
            sleep=lambda s: None,
        )
