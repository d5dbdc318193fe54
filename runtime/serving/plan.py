"""The serving plan: everything `python -m mlc.runtime.serving` needs, in one JSON file.

The compiler side (`mlc serve SPEC`) writes it from the IR; the runtime reads nothing else::

    {"model_name": "credit-risk", "tracking_uri": "sqlite:////abs/.mlc/mlflow.db",
     "task": "classification", "target": "default", "features": ["age", ...],
     "contract": {"columns": {name: ColumnParams, ...}, "on_failure": "stop"},
     "strategy": {"kind": "recreate" | "canary" | "ab" | "shadow" | "blue_green", ...},
     "tracks": [{"name": "stable", "alias": "champion", "version": null, "weight": 90,
                 "onnx": null}, ...],
     "shadow": null | {"track": "stable", "mirror": "canary", "percent": 25},
     "sticky_header": "x-mlc-key",
     "log": null | {"path": "/abs/.mlc/predictions", "sample": 1.0, "segment_rows": 1000,
                    "segment_seconds": 60},
     "limits": {"max_body_bytes": 1048576, "max_rows": 1000, "timeout_s": 10.0},
     "secrets": {"MLC_PSEUDONYM_KEY": "..."},
     "admin_token": null | "...",            # optional: enables the /admin/ endpoints
     "seed": 0,                               # optional: routing and sampling RNG seed
     "audit_dir": null | "/abs/.mlc",         # optional: rollout decisions go to its audit chain
     "rollout": {"min_requests": 200, "tick_s": 0.5},   # optional: see `rollout`
     "reload_s": null | 30,                   # optional: follow the aliases (`reload`)
     "batching": null | {"max_batch_size": 32, "max_latency_ms": 2.0},   # optional
     "row_path": true}                        # optional: one-row requests compiled (rowpath)

`features` are the raw input columns in the order the model takes them. Track weights sum to
100 (a mirror-only shadow track may weigh 0). A track names `version` (pinned) or an `alias`
resolved once at start-up; `onnx`, when set, is an export package folder scored with
`mlc.runtime.onnx_export.load_package` instead of the registered sklearn model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from mlc.runtime.context import StepError

if TYPE_CHECKING:
    from mlc.compiler.ir.params import ContractParams

STEP = "serve"
DEFAULT_LIMITS = {"max_body_bytes": 1_048_576, "max_rows": 1000, "timeout_s": 10.0}
STRATEGIES = ("recreate", "canary", "ab", "shadow", "blue_green")
DEFAULT_ROLLOUT = {"min_requests": 200, "tick_s": 0.5}


class TrackPlan(TypedDict):
    """One model served under a name (`stable`, `canary`, a variant)."""

    name: str
    alias: str | None
    version: str | None
    weight: float
    onnx: str | None


class ShadowPlan(TypedDict):
    """`track` answers; `mirror` gets `percent` % of the same rows off the request path."""

    track: str
    mirror: str
    percent: float


class LogPlan(TypedDict):
    """Prediction log: `sample` share of requests, Parquet segments rotated by rows or age."""

    path: str
    sample: float
    segment_rows: int
    segment_seconds: float


class LimitsPlan(TypedDict):
    max_body_bytes: int
    max_rows: int
    timeout_s: float


class RolloutSettings(TypedDict):
    """Automatic rollouts: candidate requests a bake needs to be judged, seconds between checks."""

    min_requests: int
    tick_s: float


class BatchingPlan(TypedDict):
    """Adaptive micro-batching: requests to one track scored together, each keeping its rows."""

    max_batch_size: int
    max_latency_ms: float


class WorkerPlan(TypedDict):
    """One of `count` worker processes sharing a socket; metrics shared through `metrics_dir`."""

    index: int
    count: int
    metrics_dir: str


class ServingPlan(TypedDict):
    """The whole plan (see the module docstring)."""

    model_name: str
    tracking_uri: str
    task: Literal["classification", "regression"]
    target: str | None
    features: list[str]
    contract: ContractParams
    strategy: dict[str, Any]
    tracks: list[TrackPlan]
    shadow: ShadowPlan | None
    sticky_header: str | None
    log: LogPlan | None
    limits: LimitsPlan
    secrets: dict[str, str]
    admin_token: str | None
    seed: int
    audit_dir: str | None
    rollout: RolloutSettings
    reload_s: float | None
    batching: BatchingPlan | None
    row_path: bool
    worker: WorkerPlan | None


def _fail(message: str, hint: str = "") -> StepError:
    return StepError(STEP, message, hint)


def _number(value: Any, where: str, *, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"plan: {where} must be a finite number, got {value!r}")
    if value < low:
        raise _fail(f"plan: {where} must be at least {low}, got {value!r}")
    return float(value)


def _tracks(raw: Any, kind: str) -> list[TrackPlan]:
    if not isinstance(raw, list) or not raw:
        raise _fail("plan: 'tracks' must be a non-empty list", "one track per served model")
    tracks: list[TrackPlan] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _fail(f"plan: tracks[{i}] must be an object with a 'name'")
        alias, version = item.get("alias"), item.get("version")
        if alias is None and version is None:
            raise _fail(f"plan: track '{item['name']}' names neither an alias nor a version")
        tracks.append(
            {
                "name": item["name"],
                "alias": None if alias is None else str(alias),
                "version": None if version is None else str(version),
                "weight": _number(item.get("weight", 100), f"tracks[{i}].weight"),
                "onnx": None if item.get("onnx") is None else str(item["onnx"]),
            }
        )
    names = [t["name"] for t in tracks]
    if len(set(names)) != len(names):
        raise _fail(f"plan: track names repeat: {', '.join(names)}")
    total = sum(t["weight"] for t in tracks)
    if abs(total - 100.0) > 1e-6:
        raise _fail(
            f"plan: track weights sum to {total:g}, not 100",
            ", ".join(f"{t['name']}={t['weight']:g}" for t in tracks),
        )
    if kind == "recreate" and len(tracks) != 1:
        raise _fail(f"plan: strategy 'recreate' serves one track, the plan has {len(tracks)}")
    return tracks


def _worker(raw: Any) -> WorkerPlan | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("metrics_dir"), str):
        raise _fail("plan: 'worker' must be an object with index, count and metrics_dir")
    return {
        "index": int(_number(raw.get("index", 0), "worker.index")),
        "count": int(_number(raw.get("count", 1), "worker.count", low=1)),
        "metrics_dir": raw["metrics_dir"],
    }


def _batching(raw: Any) -> BatchingPlan | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _fail("plan: 'batching' must be an object", "keys: max_batch_size, max_latency_ms")
    size = int(_number(raw.get("max_batch_size", 1), "batching.max_batch_size", low=1))
    wait = _number(raw.get("max_latency_ms", 2.0), "batching.max_latency_ms")
    return None if size <= 1 else {"max_batch_size": size, "max_latency_ms": wait}


def check(raw: Any) -> ServingPlan:
    """A plan from its JSON document; a wrong field is a `StepError` naming it."""
    if not isinstance(raw, dict):
        raise _fail("plan: the document must be a JSON object")
    for key in ("model_name", "tracking_uri", "task", "features", "contract", "tracks"):
        if key not in raw:
            raise _fail(f"plan: missing key '{key}'")
    task = raw["task"]
    if task not in ("classification", "regression"):
        raise _fail(f"plan: task '{task}' is not classification or regression")
    strategy = raw.get("strategy") or {"kind": "recreate"}
    kind = strategy.get("kind", "recreate")
    if kind not in STRATEGIES:
        raise _fail(f"plan: strategy kind '{kind}' is unknown", "one of " + ", ".join(STRATEGIES))
    if kind in ("canary", "blue_green"):
        from mlc.runtime.serving.rollout import check_strategy

        check_strategy(strategy)
    features = raw["features"]
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) for f in features)
    ):
        raise _fail("plan: 'features' must be a non-empty list of column names")
    columns = (raw["contract"] or {}).get("columns") or {}
    missing = [f for f in features if f not in columns]
    if missing:
        raise _fail(
            "plan: features without a contract column: " + ", ".join(missing),
            "every raw input column needs data.contract.columns.<name>",
        )
    tracks = _tracks(raw["tracks"], kind)
    names = {t["name"] for t in tracks}
    raw_shadow = raw.get("shadow")
    shadow: ShadowPlan | None = None
    if raw_shadow is not None:
        for key in ("track", "mirror"):
            if raw_shadow.get(key) not in names:
                raise _fail(
                    f"plan: shadow.{key} '{raw_shadow.get(key)}' is not a track",
                    "tracks: " + ", ".join(sorted(names)),
                )
        shadow = {
            "track": str(raw_shadow["track"]),
            "mirror": str(raw_shadow["mirror"]),
            "percent": _number(raw_shadow.get("percent", 100), "shadow.percent"),
        }
    raw_log = raw.get("log")
    log: LogPlan | None = None
    if raw_log is not None:
        if not isinstance(raw_log, dict) or not isinstance(raw_log.get("path"), str):
            raise _fail("plan: 'log' must be an object with a 'path'")
        log = {
            "path": raw_log["path"],
            "sample": _number(raw_log.get("sample", 1.0), "log.sample"),
            "segment_rows": int(
                _number(raw_log.get("segment_rows", 1000), "log.segment_rows", low=1)
            ),
            "segment_seconds": _number(raw_log.get("segment_seconds", 60), "log.segment_seconds"),
        }
    limits = {**DEFAULT_LIMITS, **(raw.get("limits") or {})}
    raw_rollout = raw.get("rollout") or {}
    if not isinstance(raw_rollout, dict):
        raise _fail("plan: 'rollout' must be an object", "keys: min_requests, tick_s")
    rollout = {**DEFAULT_ROLLOUT, **raw_rollout}
    audit_dir = raw.get("audit_dir")
    if audit_dir is not None and not isinstance(audit_dir, str):
        raise _fail(f"plan: 'audit_dir' must be a folder path, got {audit_dir!r}")
    return {
        "model_name": str(raw["model_name"]),
        "tracking_uri": str(raw["tracking_uri"]),
        "task": task,
        "target": raw.get("target"),
        "features": list(features),
        "contract": raw["contract"],
        "strategy": dict(strategy),
        "tracks": tracks,
        "shadow": shadow,
        "sticky_header": raw.get("sticky_header"),
        "log": log,
        "limits": {
            "max_body_bytes": int(
                _number(limits["max_body_bytes"], "limits.max_body_bytes", low=1)
            ),
            "max_rows": int(_number(limits["max_rows"], "limits.max_rows", low=1)),
            "timeout_s": _number(limits["timeout_s"], "limits.timeout_s"),
        },
        "secrets": {str(k): str(v) for k, v in (raw.get("secrets") or {}).items()},
        "admin_token": raw.get("admin_token") or None,
        "seed": int(raw.get("seed", 0)),
        "audit_dir": audit_dir or None,
        "batching": _batching(raw.get("batching")),
        "row_path": raw.get("row_path", True) is not False,
        "worker": _worker(raw.get("worker")),
        "reload_s": None
        if raw.get("reload_s") in (None, 0)
        else max(0.1, _number(raw["reload_s"], "reload_s")),
        "rollout": {
            "min_requests": int(_number(rollout["min_requests"], "rollout.min_requests", low=1)),
            "tick_s": max(0.05, _number(rollout["tick_s"], "rollout.tick_s")),
        },
    }


def read(path: str | Path) -> Any:
    """The plan file's JSON, unchecked."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise _fail(f"cannot read the plan {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise _fail(f"the plan {path} is not JSON: {exc}") from None


def load(path: str | Path) -> ServingPlan:
    """Read and check the plan file."""
    return check(read(path))
