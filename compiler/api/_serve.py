"""`mlc serve`: the serving plan of a spec, for the serving runtime (`mlc.runtime.serving`).

The plan says which registered versions serve and how traffic splits between them, from
`deployment.strategy`: `recreate` serves the `champion`; `canary` the champion and the
`challenger` at the first step's weight; `ab` each variant's alias at its weight; `shadow` the
champion, mirroring `mirror_percent` % of requests to the challenger; `blue_green` the champion,
with the challenger loaded at weight 0 until the switch. Requests are checked against the data
contract. A version with a passing ONNX export (`mode: edge`'s package, in lineage) is served
from the graph. Secret values come from the environment, as `mlc run` reads them; the plan is
handed to the runtime in memory, never written with them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlc.compiler.api._check import UsageError, check
from mlc.compiler.ir import IRGraph, StepKind


class ServeError(UsageError):
    """Serving cannot start: no registered model, no such alias; the message says which."""


@dataclass
class ServePlan:
    plan: dict[str, Any]
    state_dir: Path


def _tracks(strategy: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    def track(name: str, alias: str, weight: float) -> dict[str, Any]:
        return {"name": name, "alias": alias, "version": None, "weight": weight, "onnx": None}

    kind = strategy["kind"]
    if kind == "canary":
        first = float(strategy["steps"][0])
        if first >= 100:
            return [track("canary", "challenger", 100.0)], None
        stable, canary = (
            track("stable", "champion", 100 - first),
            track("canary", "challenger", first),
        )
        return [stable, canary], None
    if kind == "ab":
        variants = strategy["variants"]
        return [track(v["name"], v["model_alias"], float(v["weight"])) for v in variants], None
    if kind == "shadow":
        percent = float(strategy["mirror_percent"])
        shadow = {"track": "stable", "mirror": "shadow", "percent": percent}
        return [track("stable", "champion", 100.0), track("shadow", "challenger", 0.0)], shadow
    if kind == "blue_green":
        return [track("stable", "champion", 100.0), track("preview", "challenger", 0.0)], None
    return [track("stable", "champion", 100.0)], None


def _exports(state_dir: Path) -> dict[str, str]:
    """Registered version -> its newest export package that still exists (parity passed: a
    failing export writes no package)."""
    from mlc.runtime import lineage

    found: dict[str, str] = {}
    for record in lineage.exports(state_dir):
        package = record.get("package")
        if package and Path(package, "model.onnx").is_file():
            found[str(record.get("version"))] = str(package)
    return found


def serve_plan(
    spec_path: str | Path,
    overrides: Sequence[str] = (),
    *,
    tracking_uri: str | None = None,
    log_sample: float | None = None,
    log_dir: str | Path | None = None,
    alias: str | None = None,
    onnx: bool = True,
    reload_interval: float | None = None,
    row_path: bool = True,
) -> ServePlan:
    """The serving plan of the spec: tracks resolved to registered versions in the store.

    `alias` serves that alias alone (one pod per version, as the cluster targets run it);
    `log_dir` moves the prediction log out of the state folder (a writable volume in a pod);
    `log_sample` and `reload_interval` override `deployment.serving`'s; `row_path=False`
    scores one-row requests through the batch path too.

    Raises:
        DiagnosticError: the spec has errors.
        ServeError: a track's alias or the model does not exist in the store.
    """
    from mlc.compiler.api._batch import _configured, _last_run
    from mlc.compiler.diagnostics import DiagnosticError
    from mlc.runtime.context import StepError
    from mlc.runtime.steps.batch_predict import resolve_version
    from mlc.targets.local import LocalOptions

    result = check(spec_path, overrides, targets=["local"])
    if not result.ok:
        raise DiagnosticError(result.diagnostics)
    ir: IRGraph = result.ir
    options = result.options["local"]
    assert isinstance(options, LocalOptions)
    state_dir = Path(result.loaded.project_dir) / options.state_dir
    register = ir.first(StepKind.REGISTER)
    if register is None:
        raise ServeError("the spec registers no model: there is nothing to serve")
    deploy = ir.first(StepKind.DEPLOY)
    strategy = dict(deploy.params["strategy"]) if deploy is not None else {"kind": "recreate"}
    serving: dict[str, Any] = dict(deploy.params.get("serving") or {}) if deploy else {}
    if log_sample is None:
        log_sample = float(serving.get("log_sample", 1.0))
    if reload_interval is None:
        reload_interval = float(serving.get("reload_interval", 0) or 0)
    secret_names = (ir.settings.get("security") or {}).get("secrets") or {}
    _, run_uri = _last_run(ir, state_dir)
    uri = (
        tracking_uri
        or options.tracking_uri
        or _configured(ir)
        or run_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
    )
    if uri is None:
        uri = f"sqlite:///{(state_dir / 'mlflow.db').resolve()}"
    reg = register.params
    tracks, shadow = _tracks(strategy if alias is None else {"kind": "recreate"})
    if alias is not None:
        tracks[0]["alias"] = alias
    packages = _exports(state_dir) if onnx else {}
    resolved: dict[str, str] = {}
    # the champion first: a challenger that does not exist yet stands in as the champion (the
    # rollout then idles until the registry names one, which the server picks up by itself)
    for entry in sorted(tracks, key=lambda t: t["alias"] != "champion"):
        try:
            version, _why = resolve_version(reg["model_name"], entry["alias"], None, uri)
        except StepError as exc:
            if entry["alias"] == "challenger" and "champion" in resolved and len(tracks) > 1:
                version = resolved["champion"]
            else:
                raise ServeError(f"track '{entry['name']}': {exc}") from None
        resolved[str(entry["alias"])] = version
        entry["version"] = version
        entry["onnx"] = packages.get(version)
    plan: dict[str, Any] = {
        "model_name": reg["model_name"],
        "tracking_uri": uri,
        "task": reg["task"],
        "target": reg["target"],
        "features": [c for c in reg["contract"]["columns"] if c != reg["target"]],
        "contract": reg["contract"],
        "strategy": strategy,
        "tracks": tracks,
        "shadow": shadow,
        "sticky_header": "x-mlc-key",
        "log": {
            "path": str(log_dir)
            if log_dir and "://" in str(log_dir)
            else str(Path(log_dir).resolve() if log_dir else (state_dir / "predictions").resolve()),
            "sample": log_sample,
            "segment_rows": int(serving.get("log_segment_rows", 1000)),
            "segment_seconds": float(serving.get("log_segment_seconds", 60.0)),
        }
        if log_sample > 0
        else None,
        "limits": {"max_body_bytes": 1_048_576, "max_rows": 1000, "timeout_s": 10.0},
        # as `mlc run` does: the values of the spec's secrets that this environment holds
        "secrets": {n: os.environ[n] for n in sorted(secret_names) if n in os.environ},
        # rollout decisions (automatic or through /admin/rollout) go to the project's audit chain
        "audit_dir": str(state_dir.resolve()),
    }
    if reload_interval:
        plan["reload_s"] = reload_interval
    if not row_path:
        plan["row_path"] = False
    if "min_requests" in serving:
        plan["rollout"] = {"min_requests": int(serving["min_requests"]), "tick_s": 0.5}
    if int(serving.get("max_batch_size", 1)) > 1:
        plan["batching"] = {
            "max_batch_size": int(serving["max_batch_size"]),
            "max_latency_ms": float(serving.get("max_latency_ms", 2.0)),
        }
    admin = os.environ.get("MLC_SERVE_ADMIN_TOKEN") or _admin_token(serving.get("admin_token"))
    if admin:
        plan["admin_token"] = admin
    return ServePlan(plan, state_dir)


def _admin_token(ref: str | None) -> str | None:
    """The admin token from its secret reference (`env:NAME` here; others resolved into the
    environment by the orchestrator and named `env:NAME`)."""
    from mlc.runtime import store

    try:
        return store.configured_uri(ref, "deployment.serving.admin_token")
    except store.StoreError as exc:
        raise ServeError(str(exc)) from None
