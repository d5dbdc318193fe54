"""The closed loop on a cluster: a `CronJob` running `mlc loop`, and the volume it reads.

`mlc loop` is the entry a laptop's cron runs too (monitor the prediction log -> decide -> retrain
-> gate -> canary), so a cluster runs the very same code. The job:

- runs on **one** schedule, the more frequent of `monitoring.drift.schedule` and
  `monitoring.performance.schedule` (both are named in the `mlc.dev/schedules` annotation): one
  pass of the loop checks drift and performance together, and a single CronJob with
  `concurrencyPolicy: Forbid` is what makes "one retrain at a time" hold on the cluster — two
  CronJobs would each forbid only their own overlap;
- reads the serving pods' prediction log from a `ReadWriteMany` PersistentVolumeClaim (the pods
  used an `emptyDir` before, which no other pod can read). A claim rather than a bucket URI:
  `mlc serve` writes its Parquet segments with local renames (a segment is whole or absent) and
  `mlc monitor --from-log` reads a folder, neither through an object store;
- keeps the project's state folder (`.mlc`: the loop's lock, cooldown and budget ledger, the
  audit chain, lineage, run records) on the same claim (`state/`), so they outlive the pod and
  the next run sees them; `MLC_AUDIT_URI` points the audit chain there explicitly;
- pushes its gauges (`mlc_feature_drift_score`, `mlc_model_performance`) to the Pushgateway named
  by the target's `pushgateway_url` (`MLC_PUSHGATEWAY_URL`), which is where the rollout
  analysis's `drift_score` query finds them: the serving pods do not export drift;
- runs as the serving ServiceAccount, the one the Terraform identity trusts (the tracking
  server's artifact bucket is reached with it); it calls no Kubernetes API, so its token is not
  mounted on premises.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Any

from pydantic import Field

from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.targets import _k8s_common as kube


class LoopOptions(kube.K8sOptions):
    """Options of the closed loop shared by the Kubernetes serving targets."""

    runtime_image: str = "ghcr.io/mlc-project/mlc-runtime:0.1.0"
    """Image the loop runs `mlc loop` in (the kfp components' runtime image: it trains)."""
    pushgateway_url: str = "http://prometheus-pushgateway.monitoring.svc:9091"
    """Prometheus Pushgateway the loop's monitor pass pushes its drift and performance gauges to
    (the rollout analysis and the alert rules read them from there)."""
    log_storage: str = "10Gi"
    """Size of the prediction-log claim."""
    log_storage_class: str = ""
    """StorageClass of the prediction-log claim; it must offer ReadWriteMany (EFS, Filestore,
    Azure Files, NFS). Empty: the cluster's default class."""
    audit_uri: str = ""
    """Where cluster jobs write the audit chain (`MLC_AUDIT_URI`, any fsspec URL such as
    `s3://bucket/audit/credit-risk`). Empty: the claim's `state/` folder."""
    reload_interval_s: int = Field(60, ge=0)
    """Seconds between a serving pod's alias look-ups (0: resolve once at start)."""
    loop_deadline_s: int = Field(6 * 3600, gt=0)
    """Longest a loop pass (monitor, retrain, gate, canary) may run before Kubernetes stops it."""


STATE_MOUNT = f"{kube.PROJECT_DIR}/.mlc"
"""The project's state folder, where `mlc loop` keeps its lock, ledger, audit chain, lineage."""
PREDICTIONS_DIR = f"{kube.LOG_MOUNT}/predictions"
RUN_AS = 10001
"""The uid of the runtime and serving images (`USER 10001`): the claim is group-writable by it."""

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NAMES = {
    **{m.lower(): i for i, m in enumerate(calendar.month_abbr) if m},
    **{d.lower(): (i + 1) % 7 for i, d in enumerate(calendar.day_abbr)},
}


def _field(text: str, low: int, high: int) -> set[int] | None:
    """The values a cron field matches (None: any value, `*` or `?`)."""
    if text in ("*", "?"):
        return None
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if rng in ("*", "?"):
            first, last = low, high
        else:
            a, _, b = rng.partition("-")
            first = int(_NAMES.get(a.lower(), a))
            last = int(_NAMES.get(b.lower(), b)) if b else (high if step_text else first)
        out.update(range(first, last + 1, step))
    return out


def runs_per_year(cron: str) -> int:
    """How often a cron schedule fires in a (non-leap) year; unparseable: 0.

    >>> runs_per_year("@hourly"), runs_per_year("@daily"), runs_per_year("0 3 * * 1")
    (8760, 365, 52)
    """
    fields = _MACROS.get(cron.strip(), cron.strip()).split()
    if len(fields) != 5:
        return 0
    try:
        minute, hour, dom, month, dow = (
            _field(fields[0], 0, 59),
            _field(fields[1], 0, 23),
            _field(fields[2], 1, 31),
            _field(fields[3], 1, 12),
            _field(fields[4], 0, 7),
        )
    except ValueError:
        return 0
    if dow is not None and 7 in dow:
        dow = (dow - {7}) | {0}
    per_day = (60 if minute is None else len(minute)) * (24 if hour is None else len(hour))
    days = 0
    day = dt.date(2027, 1, 1)
    while day.year == 2027:
        weekday = (day.weekday() + 1) % 7  # cron counts Sunday as 0
        in_month = month is None or day.month in month
        dom_hit = dom is None or day.day in dom
        dow_hit = dow is None or weekday in dow
        # cron's rule: with both day fields restricted, either one matching is enough
        both = dom is not None and dow is not None
        hit = (dom_hit or dow_hit) if both else (dom_hit and dow_hit)
        days += bool(in_month and hit)
        day += dt.timedelta(days=1)
    return days * per_day


def loop_schedules(monitor: Step) -> list[tuple[str, str]]:
    """(cron, spec origin) of the monitoring checks, the most frequent first."""
    found: list[tuple[str, str]] = []
    for section in ("drift", "performance"):
        block = monitor.params.get(section)
        if block and block.get("schedule"):
            found.append((str(block["schedule"]), f"monitoring.{section}.schedule"))
    # stable for equal frequencies: drift (listed first) wins a tie
    return sorted(found, key=lambda item: -runs_per_year(item[0]))


def claim_name(app: str) -> str:
    return f"{app}-predictions"


def prediction_claim(app: str, ns: str, opts: LoopOptions) -> dict[str, Any]:
    """The ReadWriteMany claim every serving pod writes its log to and the loop reads."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": str(opts.log_storage)}},
    }
    if opts.log_storage_class:
        spec["storageClassName"] = str(opts.log_storage_class)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": kube.meta(claim_name(app), ns, app),
        "spec": spec,
    }


def prediction_volume(app: str) -> dict[str, Any]:
    return {"name": "predictions", "persistentVolumeClaim": {"claimName": claim_name(app)}}


def state_mounts() -> list[dict[str, Any]]:
    """The claim at the log folder, and its `state/` at the project's state folder: the serving
    pods' rollout decisions and the loop's records land in one audit chain that outlives both."""
    return [
        {"name": "predictions", "mountPath": kube.LOG_MOUNT},
        {"name": "predictions", "mountPath": STATE_MOUNT, "subPath": "state"},
    ]


def audit_env(opts: LoopOptions) -> dict[str, Any]:
    return {"name": "MLC_AUDIT_URI", "value": str(opts.audit_uri or STATE_MOUNT)}


def admin_token_env(app: str) -> dict[str, Any]:
    """`MLC_SERVE_ADMIN_TOKEN` from the Secret `<app>-serve-admin` (key `token`), optional: a
    server without it keeps its admin endpoints off and judges its canary by itself."""
    return {
        "name": "MLC_SERVE_ADMIN_TOKEN",
        "valueFrom": {
            "secretKeyRef": {"name": f"{app}-serve-admin", "key": "token", "optional": True}
        },
    }


def monitor_step(ir: IRGraph) -> Step | None:
    """The monitor step when the spec serves online and checks drift or performance."""
    step = ir.first(StepKind.MONITOR)
    if step is None or kube.deploy_step(ir) is None:
        return None
    if not (step.params.get("drift") or step.params.get("performance")):
        return None
    return step


def loop_cronjob(
    ir: IRGraph, monitor: Step, opts: LoopOptions, *, serve_url: str
) -> dict[str, Any] | None:
    """The `CronJob` running `mlc loop` on the most frequent monitoring schedule."""
    schedules = loop_schedules(monitor)
    if not schedules:
        return None
    model = str(monitor.params["model_name"])
    app, ns = kube.dns_name(model), opts.namespace
    deploy = kube.deploy_step(ir)
    secrets = deploy.params.get("secrets", {}) if deploy is not None else {}
    args = [
        "loop",
        f"{kube.PROJECT_DIR}/mlc.yaml",
        "--log-dir",
        PREDICTIONS_DIR,
        "--serve-url",
        serve_url,
    ]
    env: list[dict[str, Any]] = [
        kube.tracking_env(ir, opts),
        {"name": "MLC_PUSHGATEWAY_URL", "value": str(opts.pushgateway_url)},
        audit_env(opts),
        admin_token_env(app),
        *kube.secret_env(secrets),
    ]
    container: dict[str, Any] = {
        "name": "loop",
        "image": opts.runtime_image,
        "command": ["mlc"],
        "args": args,
        "workingDir": kube.PROJECT_DIR,
        "env": env,
        "volumeMounts": state_mounts(),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    train = ir.first(StepKind.TRAIN)
    if train is not None:
        # the loop may retrain: size the pod like the training step
        resources = kube.container_resources(train.resources.to_dict())
        if resources:
            container["resources"] = resources
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": kube.service_account_name(model),
        "securityContext": {"fsGroup": RUN_AS, "runAsUser": RUN_AS, "runAsGroup": RUN_AS},
        "containers": [container],
        "volumes": [prediction_volume(app)],
    }
    # A failed pass is recorded by the loop and retried by the next schedule, not by the Job:
    # a retry inside the same window would judge the same evidence twice.
    job: dict[str, Any] = {
        "backoffLimit": 0,
        "activeDeadlineSeconds": int(opts.loop_deadline_s),
        "template": {"metadata": {"labels": kube.labels(f"{app}-loop")}, "spec": pod},
    }
    cron, origin = schedules[0]
    listed = ", ".join(f"{c} ({o})" for c, o in schedules)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": kube.meta(
            f"{app}-loop",
            ns,
            app,
            annotations={
                "mlc.dev/schedule-from": origin,
                "mlc.dev/schedules": listed,
            },
        ),
        "spec": {
            "schedule": _five_fields(cron),
            # one loop at a time: the next pass waits rather than retraining beside this one
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": job},
        },
    }


def _five_fields(cron: str) -> str:
    """Kubernetes reads the macros too, but five fields read the same everywhere."""
    return _MACROS.get(cron.strip(), re.sub(r"\s+", " ", cron.strip()))


def monitor_files(
    ir: IRGraph, opts: LoopOptions, *, serve_url: str, with_account: bool
) -> dict[str, str | bytes]:
    """`monitor/loop-cronjob.yaml`, or nothing when the spec checks neither drift nor
    performance of an online deployment."""
    monitor = monitor_step(ir)
    if monitor is None:
        return {}
    cronjob = loop_cronjob(ir, monitor, opts, serve_url=serve_url)
    if cronjob is None:
        return {}
    docs: list[dict[str, Any]] = []
    if with_account:
        model = str(monitor.params["model_name"])
        docs.append(kube.service_account(ir, model, opts.namespace, kube.dns_name(model)))
    docs.append(cronjob)
    return {"monitor/loop-cronjob.yaml": kube.dump_docs(docs)}


def serving_args(
    alias: str | None, port: int, tls: bool, *, follow: bool, reload_s: int
) -> list[str]:
    """`mlc serve` in a cluster pod.

    `alias` None serves the spec's strategy in the server (stable `champion` and canary
    `challenger` tracks, judged and promoted by the server itself). `follow`: re-resolve the
    aliases every `reload_s` seconds, so a promotion (or a new challenger) reaches running pods
    without a restart. A pod pinned to the candidate alias never follows: the candidate must not
    change under live traffic while a Rollout or an InferenceService revision judges it.
    """
    args = kube.serve_args(alias or "", port, tls)
    if alias is None:
        at = args.index("--alias")
        del args[at : at + 2]
    if follow and reload_s > 0:
        at = args.index("--log-dir") + 2
        args[at:at] = ["--reload-interval", str(reload_s)]
    return args
