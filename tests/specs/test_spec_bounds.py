"""Numbers a target cannot write are refused at validation, located; the largest accepted ones
compile everywhere.

Before these bounds, `.inf` in a duration, window, budget or retention validated "ok" and
`compile` then ended in `OverflowError` (kfp `tuning.timeout`, monitoring `slos.window`,
terraform `_money` and retention days) or wrote `Infinity` into `ir.json`; a duration written
with 400 digits crashed validation itself.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlc.compiler.api import check, compile_spec
from mlc.compiler.diagnostics import DiagnosticError
from mlc.compiler.load import load_spec
from mlc.compiler.sourcemap import dotted
from mlc.specs._base import MAX_DURATION_S, MAX_INT, parse_duration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CREDIT = copy.deepcopy(load_spec(EXAMPLES / "credit" / "mlc.yaml").data)
CREDIT.pop("defaults", None)

KeyPath = tuple[str | int, ...]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bounds") / "credit"
    shutil.copytree(EXAMPLES / "credit", root, ignore=shutil.ignore_patterns(".mlc"))
    return root


def _spec(project: Path, *changes: tuple[KeyPath, Any]) -> Path:
    data = copy.deepcopy(CREDIT)
    for path, value in changes:
        node: Any = data
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
        node[path[-1]] = value
    spec = project / "bounds.yaml"
    spec.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return spec


def _refusal(spec: Path, path: KeyPath) -> str:
    """The message of the error at `path`; asserts it is located on the line holding the key."""
    with pytest.raises(DiagnosticError) as info:
        check(spec)
    wanted = dotted(path)
    # an item of a list is located at the item: `alert_thresholds[1]`
    found = [
        d for d in info.value.diagnostics if d.path == wanted or d.path.startswith(wanted + "[")
    ]
    assert found, [(d.path, d.message) for d in info.value.diagnostics]
    diag = found[0]
    assert diag.location is not None and diag.location.line > 0
    line = spec.read_text(encoding="utf-8").splitlines()[diag.location.line - 1]
    assert str(path[-1]) in line or line.lstrip().startswith("-"), (line, diag)
    assert "Traceback" not in diag.message
    return diag.message


# The cases and their kin: every one validated before (and most then crashed a target).
REFUSED: list[tuple[KeyPath, Any, str]] = [
    (("tuning", "timeout"), math.inf, "not a duration"),
    (("training", "max_time"), math.inf, "not a duration"),
    (("monitoring", "slos", "window"), math.inf, "not a duration"),
    (("monitoring", "performance", "label_delay"), math.nan, "not a duration"),
    (("deployment", "strategy", "bake_time"), math.inf, "not a duration"),
    (("budgets", "idle_shutdown"), math.inf, "not a duration"),
    (("governance", "retention", "data"), math.inf, "not a duration"),
    (("governance", "retention", "logs"), "7301d", "longer than 20 years"),
    (("governance", "retention", "models"), "1" + "0" * 400 + "w", "longer than 20 years"),
    (("tuning", "timeout"), 10**30, "longer than 20 years"),
    (("budgets", "training_usd"), math.inf, "finite"),
    (("budgets", "total_usd_per_month"), math.nan, "finite"),
    (("budgets", "serving_usd_per_month"), 1e13, "less than or equal to 1000000000000"),
    (("budgets", "gpu_hours"), math.inf, "finite"),
    (("budgets", "alert_thresholds"), [50, 0], "greater than or equal to 1"),
    (("budgets", "alert_thresholds"), [50, 5000], "less than or equal to 1000"),
    (("deployment", "autoscaling", "max_replicas"), 2**31, "less than or equal to 2147483647"),
    (("training", "resources", "nodes"), 2**40, "less than or equal to 2147483647"),
    (("training", "seed"), -1, "greater than or equal to 0"),
    (("data", "split", "seed"), 2**32, "less than or equal to 4294967295"),
    (("data", "versioning", "keep"), 101, "less than or equal to 100"),
    (("tuning", "cv_folds"), 2**64, "out of range"),
    (("feedback", "triggers", 3, "rows"), 2**64, "out of range"),
    (("evaluation", "gates", 0, "threshold"), math.nan, "finite"),
    (("monitoring", "drift", "threshold"), math.inf, "finite"),
    (("data", "contract", "columns", "age", "max"), -math.inf, "finite"),
    (("training", "model", "params", "tol"), math.nan, "not a finite number"),
    (("training", "model", "params", "max_iter"), 2**70, "out of range"),
    (("training", "model", "params", "max_iter"), [1, {"a": math.inf}], "at '1.a'"),
    (("targets", "kfp", "x"), [1, math.inf], "at '1'"),
    (("training", "resources", "memory"), "9" * 30, "more than Kubernetes can hold"),
    (("training", "resources", "cpu"), "10E", "more than Kubernetes can hold"),
]


@pytest.mark.parametrize(
    ("path", "value", "words"), REFUSED, ids=[f"{dotted(p)}={v!r}"[:60] for p, v, _ in REFUSED]
)
def test_numbers_no_target_can_write_are_refused_where_they_are(
    project: Path, path: KeyPath, value: Any, words: str
) -> None:
    message = _refusal(_spec(project, (path, value)), path)
    assert words in message, message


def test_parallel_trials_are_bounded_before_kfp_lists_them(project: Path) -> None:
    """kfp writes one loop item per parallel worker: a million would be a million-item list."""
    spec = _spec(
        project,
        (("tuning", "trials"), 10**6),
        (("tuning", "parallelism"), 10**6),
        (("tuning", "storage"), "postgresql://optuna@db/optuna"),
    )
    assert "less than or equal to 1000" in _refusal(spec, ("tuning", "parallelism"))


def test_durations_are_bounded_and_still_parse() -> None:
    assert parse_duration("7300d") == MAX_DURATION_S == 20 * 365 * 86400
    assert parse_duration("0.5ms") == 0.0005
    assert parse_duration(2**28) == 2**28
    for bad in ("7300.5d", MAX_DURATION_S + 1, "9" * 400, math.inf, math.nan, -1):
        with pytest.raises(ValueError):
            parse_duration(bad)


# The largest values the bounds let through: each must compile on every target it applies to.
EDGES: list[tuple[KeyPath, Any]] = [
    (("tuning", "timeout"), "7300d"),
    (("training", "max_time"), "500ms"),
    (("monitoring", "slos", "window"), MAX_DURATION_S),
    (("governance", "retention", "data"), "7300d"),
    (("deployment", "strategy", "bake_time"), "7300d"),
    (("budgets", "training_usd"), 1e12),
    (("budgets", "total_usd_per_month"), 1e12),
    (("budgets", "alert_thresholds"), [1, 1000]),
    (("deployment", "autoscaling", "max_replicas"), 2**31 - 1),
    (("data", "split", "seed"), 2**32 - 1),
    (("data", "versioning", "keep"), 100),
    (("training", "model", "params", "max_iter"), MAX_INT),
    (("evaluation", "gates", 0, "threshold"), -1e308),
    (("monitoring", "slos", "latency_p99_ms"), 1e308),
    (("training", "resources", "memory"), "7Ei"),
]
TARGETS = ("ir", "kfp", "kserve", "monitoring", "terraform", "local", "github", "markdown")


def _finite(node: Any) -> bool:
    if isinstance(node, float):
        return math.isfinite(node)
    if isinstance(node, dict):
        return all(_finite(v) for v in node.values())
    if isinstance(node, list):
        return all(_finite(v) for v in node)
    return True


@pytest.mark.parametrize(("path", "value"), EDGES, ids=[dotted(p) for p, _ in EDGES])
def test_the_largest_accepted_values_compile_on_every_target(
    project: Path, tmp_path: Path, path: KeyPath, value: Any
) -> None:
    spec = _spec(project, (path, value))
    result = compile_spec(spec, TARGETS, tmp_path / "out")
    assert set(result.written) == set(TARGETS)
    ir = json.loads((tmp_path / "out" / "ir" / "ir.json").read_text(), parse_constant=_refuse)
    assert _finite(ir)


def _refuse(constant: str) -> Any:
    raise AssertionError(f"{constant} in ir.json")


def test_kfp_deadline_is_whole_seconds_and_never_zero(project: Path, tmp_path: Path) -> None:
    """`500ms` used to become `activeDeadlineSeconds: "0"`, which Kubernetes refuses."""
    spec = _spec(project, (("training", "max_time"), "500ms"), (("tuning", "timeout"), "90.5s"))
    compile_spec(spec, ["kfp"], tmp_path)
    docs = list(yaml.safe_load_all((tmp_path / "kfp" / "pipeline.yaml").read_text()))
    deadlines = {
        name: cfg.get("activeDeadlineSeconds")
        for doc in docs
        for name, cfg in (
            doc.get("platforms", {})
            .get("kubernetes", {})
            .get("deploymentSpec", {})
            .get("executors", {})
            .items()
        )
    }
    assert deadlines["exec-train"] == "1"
    assert deadlines["exec-tune"] == "91"
