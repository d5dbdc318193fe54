"""The monitor pipeline beside the training pipeline: monitor -> decide -> start training.

`monitor.yaml` is a second KFP package with two components:

- `monitor` runs `mlc monitor` on the prediction log the serving pods write (the claim
  `<model>-predictions` of the kserve/k8s targets, mounted at `log_dir`; or a `current` file),
  pushes its gauges to the Pushgateway when one is named, keeps the signal and decision as its
  `report` artifact and returns the decision (`mlc monitor` exits 10 when it recommends
  retraining, 0 when not; anything else fails the task with its message);
- `start-training`, only when the decision says retrain, starts the training package
  (`training_package`, by default the `pipeline.yaml` compiled beside this one into
  `<project_dir>/kfp/`) as a new run with the kfp client from inside the run: the in-cluster API
  (`ml-pipeline.<namespace>.svc.cluster.local:8888`) unless `kfp_host` or `MLC_KFP_HOST` names
  one. The training run then gates, registers the `challenger` and leaves the canary to
  `mlc serve` (see the kserve target).

`monitor-recurring-runs.yaml` schedules it on the more frequent of `monitoring.drift.schedule`
and `monitoring.performance.schedule` with `max_concurrency: 1`, and `monitor-rbac.yaml` holds
the ServiceAccount it runs as and the Role letting it create runs (`pipelines.kubeflow.org`:
KFP's multi-user mode authorises API calls against these resources for the caller's
ServiceAccount).
"""

from __future__ import annotations

import json
from typing import Any

from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.targets import _k8s_common as kube
from mlc.targets.k8s.monitor import loop_schedules
from mlc.targets.kfp import KfpOptions
from mlc.targets.kfp.components import _PRELUDE, executor_spec, schema
from mlc.targets.kfp.platform import secret_ref
from mlc.targets.kfp.schedule import kfp_cron

MONITOR_FILE = "monitor.yaml"
LOG_MOUNT = "/var/lib/mlc"
_CHANNEL = "pipelinechannel--"
_RETRAIN = 10
"""`mlc monitor`'s exit code when it recommends retraining."""


def monitor_step(ir: IRGraph) -> Step | None:
    step = ir.first(StepKind.MONITOR)
    if step is None or not (step.params.get("drift") or step.params.get("performance")):
        return None
    return step


def monitor_source(training_pipeline: str) -> tuple[str, str]:
    fn = "mlc_monitor"
    body = f'''def {fn}(mlc_project_dir: str, log_dir: str, current: str, now: str,
        pushgateway: str, overrides: str, report: Output[Artifact]) -> bool:
    """`mlc monitor` on the prediction log (or `current`): True when it recommends retraining."""
    import json
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-c", "from mlc.compiler.cli import main; main()", "monitor",
            os.path.join(mlc_project_dir, "mlc.yaml"), *json.loads(overrides or "[]"),
            "--out", report.path]
    if current:
        argv += ["--current", os.path.join(mlc_project_dir, current)]
    else:
        argv += ["--from-log", "--log-dir", log_dir]
    if now:
        argv += ["--now", now]
    if pushgateway:
        argv += ["--pushgateway", pushgateway, "--push-job", "mlc-monitor"]
    done = subprocess.run(argv, cwd=mlc_project_dir, capture_output=True, text=True)
    print(done.stdout)
    print(done.stderr, file=sys.stderr)
    if done.returncode not in (0, {_RETRAIN}):
        raise RuntimeError(
            "mlc monitor failed (exit " + str(done.returncode) + ") for "
            + {json.dumps(training_pipeline)} + ": " + done.stderr.strip()[-2000:])
    return done.returncode == {_RETRAIN}
'''
    return fn, _PRELUDE + body + "\n"


_START_RUN = """
import json, sys
from kfp.client import Client
a = json.loads(sys.argv[1])
client = Client(host=a["host"], namespace=a["namespace"])
run = client.create_run_from_pipeline_package(
    a["package"], arguments=a["arguments"], run_name=a["run_name"],
    experiment_name=a["experiment"], namespace=a["namespace"],
    service_account=a["service_account"])
print(run.run_id)
"""
"""The kfp client call, in a process of its own: kfp's executor sets `_KFP_RUNTIME`, under which
`kfp.client` cannot be imported."""


def trigger_source(pipeline: str, namespace: str, service_account: str, experiment: str) -> str:
    fn = "mlc_start_training"
    call: dict[str, str | None] = {
        "experiment": experiment or pipeline,
        "namespace": namespace,
        "run_name": f"{pipeline}-retrain",
        "service_account": service_account or None,
    }
    body = f'''def {fn}(mlc_project_dir: str, training_package: str, kfp_host: str,
        report: Input[Artifact]) -> str:
    """Start the training pipeline as a new run (the monitor decided to retrain)."""
    import json
    import os
    import subprocess
    import sys

    package = training_package or os.path.join(mlc_project_dir, "kfp", "pipeline.yaml")
    if not os.path.isabs(package):
        package = os.path.join(mlc_project_dir, package)
    if not os.path.isfile(package):
        raise RuntimeError(
            "mlc: the training package " + package + " is not in the image; compile it with "
            "`mlc compile --target kfp -o <project>` before building the image, or set "
            "training_package")
    host = kfp_host or os.environ.get("MLC_KFP_HOST") or None
    where = host or "the in-cluster Kubeflow Pipelines API"
    call = {{**{call!r}, "host": host, "package": package,
            "arguments": {{"project_dir": mlc_project_dir}}}}
    env = {{k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}}
    done = subprocess.run([sys.executable, "-c", {json.dumps(_START_RUN)}, json.dumps(call)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [x for x in done.stderr.strip().splitlines() if x.strip()]
        raise RuntimeError(
            "mlc: retraining was decided but the training pipeline " + {json.dumps(pipeline)}
            + " could not be started on " + where + ": " + (lines[-1] if lines else "")[:500]
            + " (check kfp_host / MLC_KFP_HOST and the monitor's ServiceAccount RBAC)")
    run_id = done.stdout.strip().splitlines()[-1]
    print("mlc: started training run " + run_id + " on " + where)
    return run_id
'''
    return _PRELUDE + body + "\n"


def _param(default: str) -> dict[str, Any]:
    return {"defaultValue": default, "isOptional": True, "parameterType": "STRING"}


def build_monitor_pipeline(
    ir: IRGraph, options: KfpOptions, service_account: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(PipelineSpec, Kubernetes platform document) of the monitor pipeline."""
    name = f"{ir.name}-monitor"
    monitor_fn, monitor_src = monitor_source(ir.name)
    trigger_src = trigger_source(ir.name, options.namespace, service_account, options.experiment)
    root_params = {
        "project_dir": _param(options.project_dir),
        "log_dir": _param(f"{LOG_MOUNT}/predictions"),
        "current": _param(""),
        "now": _param(""),
        "pushgateway": _param(options.pushgateway_url),
        "training_package": _param(f"kfp/{options.filename}"),
        "kfp_host": _param(""),
        # the spec overrides the training pipeline was compiled with, as a JSON list
        "overrides": _param("[]"),
    }
    monitor_inputs = {
        "mlc_project_dir": "project_dir",
        "log_dir": "log_dir",
        "current": "current",
        "now": "now",
        "pushgateway": "pushgateway",
        "overrides": "overrides",
    }
    trigger_inputs = {
        "mlc_project_dir": "project_dir",
        "training_package": "training_package",
        "kfp_host": "kfp_host",
    }
    condition = "comp-condition-1"
    decided = f"{_CHANNEL}monitor-Output"
    report = f"{_CHANNEL}monitor-report"
    components = {
        "comp-monitor": {
            "executorLabel": "exec-monitor",
            "inputDefinitions": {
                "parameters": {k: {"parameterType": "STRING"} for k in monitor_inputs}
            },
            "outputDefinitions": {
                "artifacts": {"report": {"artifactType": schema("Artifact")}},
                "parameters": {"Output": {"parameterType": "BOOLEAN"}},
            },
        },
        "comp-start-training": {
            "executorLabel": "exec-start-training",
            "inputDefinitions": {
                "artifacts": {"report": {"artifactType": schema("Artifact")}},
                "parameters": {k: {"parameterType": "STRING"} for k in trigger_inputs},
            },
            "outputDefinitions": {"parameters": {"Output": {"parameterType": "STRING"}}},
        },
        condition: {
            "dag": {
                "tasks": {
                    "start-training": {
                        "cachingOptions": {},
                        "componentRef": {"name": "comp-start-training"},
                        "inputs": {
                            "artifacts": {"report": {"componentInputArtifact": report}},
                            "parameters": {
                                k: {"componentInputParameter": f"{_CHANNEL}{v}"}
                                for k, v in trigger_inputs.items()
                            },
                        },
                        "taskInfo": {"name": "start-training"},
                    }
                }
            },
            "inputDefinitions": {
                "artifacts": {report: {"artifactType": schema("Artifact")}},
                "parameters": {
                    decided: {"parameterType": "BOOLEAN"},
                    **{
                        f"{_CHANNEL}{v}": {"parameterType": "STRING"}
                        for v in trigger_inputs.values()
                    },
                },
            },
        },
    }
    tasks = {
        "monitor": {
            # a monitor pass reads the log as it is now: never a cache hit
            "cachingOptions": {},
            "componentRef": {"name": "comp-monitor"},
            "inputs": {
                "parameters": {k: {"componentInputParameter": v} for k, v in monitor_inputs.items()}
            },
            "taskInfo": {"name": "monitor"},
        },
        "condition-1": {
            "componentRef": {"name": condition},
            "dependentTasks": ["monitor"],
            "inputs": {
                "artifacts": {
                    report: {
                        "taskOutputArtifact": {
                            "outputArtifactKey": "report",
                            "producerTask": "monitor",
                        }
                    }
                },
                "parameters": {
                    decided: {
                        "taskOutputParameter": {
                            "outputParameterKey": "Output",
                            "producerTask": "monitor",
                        }
                    },
                    **{
                        f"{_CHANNEL}{v}": {"componentInputParameter": v}
                        for v in trigger_inputs.values()
                    },
                },
            },
            "taskInfo": {"name": "retrain-decided"},
            "triggerPolicy": {"condition": f"inputs.parameter_values['{decided}'] == true"},
        },
    }
    executors = {
        "exec-monitor": executor_spec(
            monitor_fn, monitor_src, options.image, options.install_kfp_package
        ),
        "exec-start-training": executor_spec(
            "mlc_start_training", trigger_src, options.image, options.install_kfp_package
        ),
    }
    doc = {
        "components": components,
        "deploymentSpec": {"executors": executors},
        "pipelineInfo": {
            "name": name,
            "description": f"Monitor {ir.name} on its prediction log; retrain when it drifts.",
        },
        "root": {"dag": {"tasks": tasks}, "inputDefinitions": {"parameters": root_params}},
        "schemaVersion": "2.1.0",
        "sdkVersion": "mlc",
    }
    monitor_config: dict[str, Any] = {
        # the serving targets' log claim, in the same namespace as the runs
        "pvcMount": [{"constant": f"{kube.dns_name(ir.name)}-predictions", "mountPath": LOG_MOUNT}]
    }
    secrets = dict(ir.settings.get("security", {}).get("secrets", {}))
    by_secret: dict[str, dict[str, str]] = {}
    for env, ref in sorted(secrets.items()):
        secret, key = secret_ref(env, ref)
        by_secret.setdefault(secret, {})[key] = env
    if by_secret:
        monitor_config["secretAsEnv"] = [
            {
                "keyToEnv": [{"envVar": env, "secretKey": key} for key, env in sorted(m.items())],
                "secretName": secret,
                "secretNameParameter": {"runtimeValue": {"constant": secret}},
            }
            for secret, m in sorted(by_secret.items())
        ]
    platform = {
        "platforms": {
            "kubernetes": {"deploymentSpec": {"executors": {"exec-monitor": monitor_config}}}
        }
    }
    return doc, platform


def monitor_schedule(step: Step) -> tuple[str, str] | None:
    """(cron, origin): the more frequent monitoring schedule (drift wins a tie)."""
    found = loop_schedules(step)
    return found[0] if found else None


def rbac(ir: IRGraph, options: KfpOptions, account: str) -> list[dict[str, Any]]:
    """ServiceAccount of the monitor runs and the Role that lets them start training runs."""
    ns = options.namespace
    labels = {
        "app.kubernetes.io/name": kube.dns_name(ir.name),
        "app.kubernetes.io/managed-by": "mlc",
    }

    def meta(name: str) -> dict[str, Any]:
        return {"name": name, "namespace": ns, "labels": dict(labels)}

    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(account)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(account),
            "rules": [
                {
                    "apiGroups": ["pipelines.kubeflow.org"],
                    "resources": ["runs"],
                    "verbs": ["create", "get", "list"],
                },
                {
                    "apiGroups": ["pipelines.kubeflow.org"],
                    "resources": ["experiments"],
                    "verbs": ["create", "get", "list"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(account),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
        },
    ]


def monitor_files(ir: IRGraph, options: KfpOptions, dump: Any) -> dict[str, str | bytes]:
    """`monitor.yaml`, `monitor-recurring-runs.yaml`, `monitor-rbac.yaml`; nothing when the spec
    checks neither drift nor performance."""
    step = monitor_step(ir)
    if step is None:
        return {}
    account = options.service_account or f"{kube.dns_name(ir.name)}-monitor"
    doc, platform = build_monitor_pipeline(ir, options, options.service_account)
    header = [
        "# PIPELINE DEFINITION",
        f"# Name: {ir.name}-monitor",
        f"# Compiled by mlc from spec {str(ir.metadata.get('spec_hash', ''))[:12]}",
    ]
    files: dict[str, str | bytes] = {
        MONITOR_FILE: "\n".join(header) + "\n" + dump(doc) + "---\n" + dump(platform)
    }
    schedule = monitor_schedule(step)
    if schedule is not None:
        cron, origin = schedule
        defaults = {
            k: p["defaultValue"] for k, p in doc["root"]["inputDefinitions"]["parameters"].items()
        }
        files["monitor-recurring-runs.yaml"] = dump(
            {
                "kind": "mlc.kfp/RecurringRuns",
                "version": 1,
                "pipeline": f"{ir.name}-monitor",
                "pipeline_package": MONITOR_FILE,
                "namespace": options.namespace,
                "service_account": account,
                "experiment": options.experiment or ir.name,
                "recurring_runs": [
                    {
                        "name": f"{ir.name}-monitor",
                        "cron_expression": kfp_cron(cron),
                        "origin": origin,
                        # one monitor pass (and so one retrain trigger) at a time
                        "max_concurrency": 1,
                        "no_catchup": True,
                        "enabled": True,
                        "parameters": dict(sorted(defaults.items())),
                    }
                ],
            }
        )
    files["monitor-rbac.yaml"] = kube.dump_docs(rbac(ir, options, account))
    return files
