"""retrain_trigger: decide from the monitor's signal whether to retrain, and what to label next.

Inputs: `signal` (the monitor's output: `report.json`), optionally `current` (the production
rows) and `model` (for active learning). Params are the IR's `retrain-trigger` params
(`triggers`, `active_learning`, `promotion`, `model_name`) plus `state`, the facts the caller
knows about the deployed model (also read from `ctx.extra`, which wins):

- `champion_metrics`: `{metric: value}` recorded when the champion was promoted;
- `last_trained`: ISO-8601 UTC time of the last training run;
- `now`: ISO-8601 UTC time of this evaluation (default: the clock; set it for reproducibility);
- `new_rows`: rows gathered since the last training (default: the signal's `rows_current`).

Each trigger is one check: `drift` fires when a feature's score is over the trigger's
`threshold` (default: the monitor's own threshold), `performance_drop` when the metric got worse
by at least `drop` since its value at promotion (in the trigger's `direction`: a rise of rmse, a
fall of accuracy), `data_volume`
when `new_rows >= rows`, `schedule` when the cron schedule had a firing time after
`last_trained` up to `now`. Output `decision`: `decision.json` `{"retrain", "reasons",
"checks": [{kind, fired, reason, …}], "to_label": [{row, score}], "strategy"}` (`row`: the
position in the current data; rows already labelled are not proposed while unlabelled ones
remain) and `to_label.csv` (the selected rows with their `_uncertainty` score).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, load_model, need, out

if TYPE_CHECKING:
    from mlc.compiler.ir.params import RetrainTriggerParams, TriggerParams

STEP = "retrain_trigger"
# The same signal picks the same rows to label (the params carry no seed).
_PICK_SEED = 0

_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}
_NAMES = {
    **{d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
    **{
        m: i + 1
        for i, m in enumerate(
            ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        )
    },
}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _field(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.upper().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body in ("*", "?"):
            start, end = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            start, end = int(_NAMES.get(a, a)), int(_NAMES.get(b, b))
        else:
            start = int(_NAMES.get(body, body))
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise ValueError(f"cron field '{text}' is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def cron_fires(cron: str, after: dt.datetime, until: dt.datetime) -> dt.datetime | None:
    """The first time in `(after, until]` the five-field cron schedule fires, else None."""
    fields = _ALIASES.get(cron.strip(), cron).split()
    if len(fields) != 5:
        raise ValueError(f"'{cron}' is not a five-field cron schedule")
    minutes, hours, days, months, weekdays = (
        _field(f, lo, hi) for f, (lo, hi) in zip(fields, _RANGES, strict=True)
    )
    weekdays = {d % 7 for d in weekdays}
    dom_any, dow_any = fields[2] in ("*", "?"), fields[4] in ("*", "?")
    day = after.replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= until:
        cron_dow = (day.weekday() + 1) % 7
        dom_ok, dow_ok = day.day in days, cron_dow in weekdays
        # cron's rule: with both day fields restricted, either one matching is enough
        day_ok = (
            dom_ok and dow_ok if dom_any or dow_any else dom_ok or dow_ok
        ) and day.month in months
        if day_ok:
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    when = day.replace(hour=hour, minute=minute)
                    if after < when <= until:
                        return when
        day += dt.timedelta(days=1)
    return None


def _time(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        when = value
    else:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _moved(before: float, after: float) -> str:
    return "rose" if after > before else "fell" if after < before else "stayed"


def _judged(worse: float) -> str:
    """`worse by 0.45`, `better by 0.1` or `unchanged`, in the metric's own direction."""
    if worse == 0:
        return "unchanged"
    return f"{'worse' if worse > 0 else 'better'} by {abs(worse):.4g}"


def evaluate_triggers(
    triggers: Sequence[TriggerParams],
    report: dict[str, Any],
    state: dict[str, Any],
) -> list[dict[str, Any]]:
    """One check per trigger: `{kind, fired, reason, …}` (see the module docstring)."""
    from mlc.runtime.steps._metrics import direction_of, worsening

    checks = []
    for trig in triggers:
        kind = trig["kind"]
        check: dict[str, Any] = {"kind": kind, "fired": False}
        # Each branch compares `trig["kind"]` itself so that mypy narrows `trig` to its kind.
        if trig["kind"] == "drift":
            threshold = trig["threshold"]
            scored = [r for r in report.get("drift", []) if r.get("score") is not None]
            over = [
                r
                for r in scored
                if (r["score"] > threshold if threshold is not None else r.get("drifted"))
            ]
            check.update(
                threshold=threshold,
                features=[r["feature"] for r in over],
                fired=bool(over),
                reason=(
                    "drift in "
                    + ", ".join(f"{r['feature']} ({r['method']} {r['score']:.3g})" for r in over)
                    if over
                    else f"no drift in {len(scored)} features"
                ),
            )
        elif trig["kind"] == "performance_drop":
            metric, drop = str(trig["metric"]), float(trig["drop"])
            perf = report.get("performance") or {}
            current = (perf.get("values") or {}).get(metric)
            promoted = (state.get("champion_metrics") or {}).get(metric)
            check.update(metric=metric, drop=drop, current=current, promoted=promoted)
            if current is None:
                check["reason"] = f"{metric} not measured (no labelled rows or no model)"
            elif promoted is None:
                check["reason"] = f"no {metric} recorded at promotion"
            else:
                worse = worsening(promoted, current, direction_of(trig, STEP))
                check.update(worse_by=worse, fired=worse >= drop)
                check["reason"] = (
                    f"{metric} {_moved(promoted, current)} from {promoted:.4g} to {current:.4g} "
                    f"({_judged(worse)}; {'>=' if worse >= drop else '<'} {drop:g})"
                )
        elif trig["kind"] == "data_volume":
            rows = int(trig["rows"])
            new_rows = int(state.get("new_rows", report.get("rows_current", 0)))
            check.update(rows=rows, new_rows=new_rows, fired=new_rows >= rows)
            check["reason"] = f"{new_rows} new rows ({'>=' if new_rows >= rows else '<'} {rows})"
        elif trig["kind"] == "schedule":
            cron = str(trig["cron"])
            last = _time(state.get("last_trained"))
            now = _time(state.get("now")) or dt.datetime.now(dt.UTC)
            check.update(cron=cron, last_trained=last.isoformat() if last else None)
            if last is None:
                check.update(fired=True, reason="no training time recorded")
            else:
                due = cron_fires(cron, last, now)
                check.update(fired=due is not None, due=due.isoformat() if due else None)
                check["reason"] = (
                    f"'{cron}' was due at {due.isoformat()}"
                    if due
                    else f"'{cron}' not due since {last.isoformat()}"
                )
        else:
            check["reason"] = f"unknown trigger kind '{kind}'"
        checks.append(check)
    return checks


def run(
    params: RetrainTriggerParams,
    inputs: dict[str, str],
    outputs: dict[str, str],
    ctx: StepContext,
) -> dict[str, Any]:
    """Evaluate the triggers on the signal; pick rows to label; write the decision."""
    from mlc.runtime.drift import select_for_labelling

    signal = need(inputs, "signal", STEP)
    if not artifacts.exists(signal):
        raise StepError(STEP, f"input 'signal' at {signal} is not a complete artifact")
    report = artifacts.load_json(signal, "report")
    # Not an IR key: `mlc monitor` hands the run's state (champion metrics, times) in with the
    # params; a pipeline run passes it in `ctx.extra`.
    extra: Mapping[str, Any] = cast("Mapping[str, Any]", params)
    state = {**(extra.get("state") or {}), **ctx.extra}
    try:
        checks = evaluate_triggers(params["triggers"], report, state)
    except (KeyError, ValueError) as exc:
        raise StepError(STEP, f"bad trigger: {exc}") from exc
    reasons = [c["reason"] for c in checks if c["fired"]]
    al = params["active_learning"]
    picks: list[tuple[int, float]] = []
    current = None
    if al is not None and inputs.get("current"):
        current = load_frame(inputs, "current", STEP)
        model = load_model(inputs, "model", STEP, ctx) if inputs.get("model") else None
        target = params["target"]
        unlabelled = current
        if target and target in current.columns:
            unlabelled = current[current[target].isna()]
            if unlabelled.empty:
                # every row is labelled already: rank them all, the choice is still useful
                unlabelled = current
        features = unlabelled.drop(columns=[target]) if target in unlabelled.columns else unlabelled
        picks = [
            (int(unlabelled.index[i]), score)
            for i, score in select_for_labelling(
                model,
                features,
                al["strategy"],
                al["batch_size"],
                _PICK_SEED,
            )
        ]
    decision = {
        "model_name": params["model_name"],
        "retrain": bool(reasons),
        "reasons": reasons,
        "checks": checks,
        "strategy": al["strategy"] if al is not None else None,
        "to_label": [{"row": row, "score": score} for row, score in picks],
    }
    loc = out(outputs, "decision", STEP)
    if current is not None:
        sample = current.loc[[row for row, _ in picks]].copy()
        sample["_uncertainty"] = [score for _, score in picks]
        artifacts.save_text(loc, "to_label.csv", sample.to_csv(index=False))
    artifacts.save_json(loc, "decision", decision, "decision", retrain=decision["retrain"])
    return {"retrain": decision["retrain"], "reasons": reasons, "to_label": len(picks)}
