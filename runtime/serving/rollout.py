"""Canary and blue-green rollouts run by the server itself, judged on its own live metrics.

The candidate track (`canary`, or blue-green's `preview`) starts at the plan's weight. With
`bake_time` > 0 (and, for blue-green, `switch: auto`) the server judges it after every bake on
the strategy's rollback conditions, computed over the bake window from the requests that
version answered: the 5xx ratio and the latency quantiles from the latency buckets of
`mlc.runtime.metrics_contract` (the way `histogram_quantile` reads them). Client errors (4xx)
are left out: the model never ran. `drift_score` is the largest PSI of a uniform sample of the
candidate's inputs in the window against the reference profile stored with its version; a
version without a profile leaves it unmeasured, which is inconclusive.

Fewer than `min_requests` candidate requests in the window is *inconclusive*: the bake is
extended, nothing advances. Silence is never a pass. A condition holding rolls back (candidate
weight 0); otherwise the candidate advances to the next step, and after the last one it is
promoted: the registry alias `champion` moves to its version. Every decision, automatic or
from the admin endpoints, goes to the audit chain with its evidence when `audit_dir` is set.

Weights change atomically in the router; a request already routed keeps its track, and every
track stays loaded, so no decision fails a request in flight.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import operator
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlc.runtime import metrics_contract as mc

if TYPE_CHECKING:
    from mlc.runtime.serving.models import Track
    from mlc.runtime.serving.plan import ServingPlan
    from mlc.runtime.serving.routing import Router

logger = logging.getLogger("mlc.serving.rollout")
BUCKETS = tuple(float(b) for b in mc.LATENCY_BUCKETS_SECONDS)
KINDS = ("canary", "blue_green")
KEPT_DECISIONS = 50
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
MEASURED = ("error_rate", "latency_p99_ms", "latency_p50_ms")
"""Metrics the server measures from its request counts and latency buckets."""
DRIFT_SAMPLE = 5000
"""Candidate rows kept per bake window for `drift_score` (a uniform reservoir sample)."""


def check_strategy(strategy: Mapping[str, Any]) -> None:
    """Raise a `StepError` naming the first field of a canary or blue-green strategy that the
    controller cannot act on."""
    from mlc.runtime.context import StepError
    from mlc.runtime.serving.plan import STEP

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    kind = strategy.get("kind")
    if not number(strategy.get("bake_time", 0)) or float(strategy.get("bake_time", 0)) < 0:
        raise StepError(
            STEP,
            f"plan: strategy.bake_time must be seconds >= 0, got {strategy.get('bake_time')!r}",
        )
    # without steps (a hand-written plan) the canary is moved by hand: advance promotes it
    if kind == "canary" and strategy.get("steps") is not None:
        steps = strategy["steps"]
        if (
            not isinstance(steps, list)
            or not steps
            or not all(number(s) and 0 < s <= 100 for s in steps)
            or float(steps[-1]) != 100
            or any(a >= b for a, b in itertools.pairwise(steps))
        ):
            raise StepError(
                STEP,
                f"plan: strategy.steps {steps!r} are not rising percentages ending at 100",
                "for example [10, 50, 100]",
            )
    for i, cond in enumerate(strategy.get("rollback") or []):
        metric = cond.get("metric") if isinstance(cond, dict) else None
        if metric not in (*MEASURED, "drift_score"):
            raise StepError(
                STEP,
                f"plan: strategy.rollback[{i}].metric {metric!r} is unknown",
                "one of " + ", ".join((*MEASURED, "drift_score")),
            )
        if cond.get("op") not in OPS or not number(cond.get("threshold")):
            raise StepError(
                STEP,
                f"plan: strategy.rollback[{i}] needs op ({', '.join(OPS)}) and a number threshold",
            )


class RolloutConflict(Exception):
    """A decision that does not apply now (no rollout, already promoted or rolled back)."""


class Window:
    """Per-version request counts, 5xx counts and latency buckets since the window opened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self._stats: dict[str, list[int]] = {}
        self.sample: list[dict[str, Any]] = []
        self._seen = 0
        self._rng = random.Random(0)

    def keep_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Candidate input rows, as a uniform reservoir of at most `DRIFT_SAMPLE`."""
        with self._lock:
            for row in rows:
                self._seen += 1
                if len(self.sample) < DRIFT_SAMPLE:
                    self.sample.append(dict(row))
                else:
                    slot = self._rng.randrange(self._seen)
                    if slot < DRIFT_SAMPLE:
                        self.sample[slot] = dict(row)

    def observe(self, version: str, code: int, seconds: float) -> None:
        if 400 <= code < 500:
            return
        slot = len(BUCKETS)
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                slot = i
                break
        with self._lock:
            # [requests, errors, bucket 0, ..., bucket n-1, +Inf]
            stats = self._stats.setdefault(version, [0] * (len(BUCKETS) + 3))
            stats[0] += 1
            stats[1] += code >= 500
            stats[2 + slot] += 1

    def stats(self, version: str) -> tuple[int, int, list[int]]:
        """(requests, errors, per-bucket counts with +Inf last) of `version`."""
        with self._lock:
            got = list(self._stats.get(version) or [0] * (len(BUCKETS) + 3))
        return got[0], got[1], got[2:]


def quantile(q: float, counts: Sequence[int], bounds: Sequence[float] = BUCKETS) -> float | None:
    """The `q` quantile in seconds from per-bucket counts, interpolated inside the bucket as
    Prometheus' `histogram_quantile` does (the +Inf bucket answers the highest bound)."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i >= len(bounds):
                return float(bounds[-1])
            low = 0.0 if i == 0 else float(bounds[i - 1])
            return low + (float(bounds[i]) - low) * (rank - seen) / count
        seen += count
    return float(bounds[-1])


def measure(metric: str, requests: int, errors: int, counts: Sequence[int]) -> float | None:
    """A rollback metric's value over a window; None when the server cannot measure it."""
    if requests == 0 or metric not in MEASURED:
        return None
    if metric == "error_rate":
        return errors / requests
    value = quantile(0.99 if metric == "latency_p99_ms" else 0.5, counts)
    return None if value is None else value * 1000.0


def drift_score(profile: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The largest PSI of the candidate's inputs against its version's reference profile,
    per feature of the profile the requests carry (the monitor's default test)."""
    import pandas as pd

    from mlc.runtime import drift
    from mlc.runtime import profile as profiles

    frame = pd.DataFrame(list(rows))
    scores: dict[str, float] = {}
    for name, entry in sorted((profile.get("features") or {}).items()):
        if name not in frame.columns:
            continue
        ref, cur = profiles.binned_counts(entry, frame[name])
        value = drift.psi_counts(ref, cur)
        if value == value:
            scores[name] = round(value, 6)
    top = max(scores.items(), key=lambda kv: kv[1]) if scores else None
    return {"value": top[1] if top else None, "feature": top[0] if top else None, "psi": scores}


def judge(
    conditions: Sequence[Mapping[str, Any]],
    requests: int,
    errors: int,
    counts: Sequence[int],
    min_requests: int,
    drift: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """(`pass` | `fail` | `inconclusive`, evidence) of one window against the conditions;
    `drift` is `drift_score`'s answer for the window (None: no profile or no rows)."""
    checked: list[dict[str, Any]] = []
    for cond in conditions:
        metric, op, threshold = str(cond["metric"]), str(cond["op"]), float(cond["threshold"])
        value = (
            (drift or {}).get("value")
            if metric == "drift_score" and requests
            else measure(metric, requests, errors, counts)
        )
        holds = value is not None and OPS[op](value, threshold)
        checked.append(
            {"metric": metric, "op": op, "threshold": threshold, "value": value, "holds": holds}
        )
        if metric == "drift_score" and drift is not None:
            checked[-1]["feature"] = drift.get("feature")
            checked[-1]["psi"] = drift.get("psi")
    evidence: dict[str, Any] = {
        "requests": requests,
        "errors": errors,
        "min_requests": min_requests,
        "conditions": checked,
    }
    if requests < min_requests:
        evidence["reason"] = (
            f"{requests} candidate request(s) in the window, fewer than the {min_requests} "
            "needed to judge"
        )
        return "inconclusive", evidence
    held = [c for c in checked if c["holds"]]
    if held:
        evidence["reason"] = "; ".join(
            f"{c['metric']} {c['value']:.6g} {c['op']} {c['threshold']:g}" for c in held
        )
        return "fail", evidence
    unmeasured = [c["metric"] for c in checked if c["value"] is None]
    if unmeasured:
        evidence["reason"] = "not measured by the server: " + ", ".join(unmeasured)
        return "inconclusive", evidence
    evidence["reason"] = "no rollback condition holds"
    return "pass", evidence


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def mlflow_aliases(tracking_uri: str, model_name: str) -> Callable[[str, str], None]:
    """A setter of registry aliases of `model_name` in the plan's MLflow store."""

    def set_alias(alias: str, version: str) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.set_registered_model_alias(model_name, alias, version)

    return set_alias


@dataclass
class _Pair:
    stable: str
    candidate: str


def _pair(plan: ServingPlan) -> _Pair | None:
    """The stable and candidate track names of a two-track canary or blue-green plan."""
    tracks = plan["tracks"]
    if plan["strategy"].get("kind") not in KINDS or len(tracks) != 2:
        return None
    by_alias = {t["alias"]: t["name"] for t in tracks}
    if "champion" in by_alias and "challenger" in by_alias:
        return _Pair(by_alias["champion"], by_alias["challenger"])
    names = [t["name"] for t in tracks]
    stable = "stable" if "stable" in names else names[0]
    return _Pair(stable, next(n for n in names if n != stable))


class Rollout:
    """The rollout state of one server: step, weights, bake window and the decisions taken."""

    def __init__(
        self,
        plan: ServingPlan,
        tracks: Mapping[str, Track],
        router: Router,
        set_alias: Callable[[str, str], None] | None = None,
    ) -> None:
        strategy = plan["strategy"]
        self.kind = str(strategy.get("kind", "recreate"))
        self.model = plan["model_name"]
        self.pair = _pair(plan)
        self.router = router
        self.versions = {name: t.version for name, t in tracks.items()}
        self.conditions: list[dict[str, Any]] = list(strategy.get("rollback") or [])
        self.bake_time = float(strategy.get("bake_time") or 0.0)
        settings = plan["rollout"]
        self.min_requests = int(settings["min_requests"])
        self.tick_s = float(settings["tick_s"])
        self.audit_dir = plan["audit_dir"]
        self._set_alias = set_alias or mlflow_aliases(plan["tracking_uri"], plan["model_name"])
        self._lock = threading.Lock()
        self.decisions: list[dict[str, Any]] = []
        self.rejected: set[str] = set()
        self.wants_drift = any(c.get("metric") == "drift_score" for c in self.conditions)
        self.profiles: dict[str, dict[str, Any]] = {}
        """Version -> its reference profile (`drift_score`), loaded with the track."""
        """Candidate versions this server rolled back: a reload does not start them again."""
        self.steps: list[float] = (
            [float(s) for s in strategy.get("steps") or [100]] if self.kind == "canary" else [100.0]
        )
        weight = router.weights.get(self.pair.candidate, 0.0) if self.pair else 0.0
        # -1: blue-green's preview before the switch (weight 0, judged on direct-version calls)
        self.step = next((i for i, s in enumerate(self.steps) if s >= weight), -1)
        if weight == 0:
            self.step = -1
        self.auto = (
            self.pair is not None
            and self.bake_time > 0
            and (self.kind == "canary" or strategy.get("switch", "auto") == "auto")
        )
        self.state = "none" if self.pair is None else "baking" if self.auto else "waiting"
        if (
            self.pair is not None
            and self.versions[self.pair.candidate] == self.versions[self.pair.stable]
        ):
            # `challenger` is the champion itself (the first version holds both aliases): there
            # is nothing to judge until a new challenger arrives (`reload`).
            self.state = "idle"
            self.step = -1
            self._weights(0.0)
        self.window = Window()
        self.deadline = time.monotonic() + self.bake_time
        self.extensions = 0
        self.audit_error: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ("baking", "waiting")

    # -- observation -----------------------------------------------------------------------
    def observe(self, version: str, code: int, seconds: float) -> None:
        self.window.observe(version, code, seconds)

    def _evidence(self) -> tuple[str, dict[str, Any]]:
        assert self.pair is not None
        version = self.versions[self.pair.candidate]
        requests, errors, counts = self.window.stats(version)
        drift = None
        profile = self.profiles.get(version)
        if self.wants_drift and profile is not None and self.window.sample:
            drift = drift_score(profile, list(self.window.sample))
        verdict, evidence = judge(
            self.conditions, requests, errors, counts, self.min_requests, drift
        )
        if self.wants_drift and profile is None:
            evidence["drift"] = f"v{version} has no reference profile: drift_score unmeasured"
        evidence.update(
            {
                "window_s": round(time.time() - self.window.started, 3),
                "window_started": dt.datetime.fromtimestamp(self.window.started, dt.UTC).isoformat(
                    timespec="milliseconds"
                ),
                "candidate": {"track": self.pair.candidate, "version": version},
                "stable": {
                    "track": self.pair.stable,
                    "version": self.versions[self.pair.stable],
                    "requests": self.window.stats(self.versions[self.pair.stable])[0],
                },
            }
        )
        return verdict, evidence

    def status(self) -> dict[str, Any]:
        with self._lock:
            doc: dict[str, Any] = {
                "model": self.model,
                "strategy": self.kind,
                "state": self.state,
                "automatic": self.auto,
                "weights": self.router.weights,
                "steps": self.steps,
                "step": self.step,
                "bake_time": self.bake_time,
                "min_requests": self.min_requests,
                "extensions": self.extensions,
                "last_decision": self.decisions[-1] if self.decisions else None,
                "decisions": len(self.decisions),
                "audit_error": self.audit_error,
            }
            if self.pair is not None:
                doc["tracks"] = {
                    "stable": {
                        "track": self.pair.stable,
                        "version": self.versions[self.pair.stable],
                    },
                    "candidate": {
                        "track": self.pair.candidate,
                        "version": self.versions[self.pair.candidate],
                    },
                }
                if self.auto and self.state == "baking":
                    doc["next_judgement_s"] = round(max(0.0, self.deadline - time.monotonic()), 3)
                doc["window"] = self._evidence()[1]
            return doc

    # -- decisions -------------------------------------------------------------------------
    def _weights(self, candidate: float) -> None:
        assert self.pair is not None
        self.router.set_weights(
            {self.pair.stable: 100.0 - candidate, self.pair.candidate: candidate}
        )

    def _record(
        self, decision: str, by: str, before: dict[str, float], evidence: dict[str, Any]
    ) -> dict[str, Any]:
        record = {
            "decision": decision,
            "by": by,
            "when": _now(),
            "strategy": self.kind,
            "model": self.model,
            "step": self.step,
            "weights_before": before,
            "weights_after": self.router.weights,
            "evidence": evidence,
        }
        self.decisions = [*self.decisions[-(KEPT_DECISIONS - 1) :], record]
        level = logging.INFO if decision == "inconclusive" else logging.WARNING
        logger.log(level, "rollout %s (%s): %s", decision, by, evidence.get("reason", ""))
        if self.audit_dir:
            from mlc.runtime import audit

            try:
                audit.append(self.audit_dir, f"rollout.{decision}", details=record)
            except OSError as exc:
                # the decision stands (traffic already moved); the status shows the lost record
                self.audit_error = f"{type(exc).__name__}: {exc}"
                logger.error("rollout: the audit record was not written: %s", exc)
        return record

    def _open_window(self) -> None:
        self.window = Window()
        self.deadline = time.monotonic() + self.bake_time
        self.extensions = 0

    def _promote(self, by: str, evidence: dict[str, Any]) -> dict[str, Any]:
        assert self.pair is not None
        before = self.router.weights
        version = self.versions[self.pair.candidate]
        evidence = {**evidence, "alias": "champion", "alias_from": self.versions[self.pair.stable]}
        try:
            self._set_alias("champion", version)
        except Exception as exc:  # the store raises many types; the rollout stays where it is
            evidence["reason"] = f"moving alias 'champion' to v{version} failed: {exc}"
            self._open_window()
            return self._record("promote_failed", by, before, evidence)
        self._weights(100.0)
        self.step = len(self.steps) - 1
        self.state = "promoted"
        evidence["alias_to"] = version
        return self._record("promote", by, before, evidence)

    def _advance(self, by: str, evidence: dict[str, Any]) -> dict[str, Any]:
        at_last = self.step >= len(self.steps) - 1 or self.kind == "blue_green"
        if at_last:
            return self._promote(by, evidence)
        before = self.router.weights
        self.step += 1
        self._weights(self.steps[self.step])
        self._open_window()
        return self._record("advance", by, before, evidence)

    def _rollback(self, by: str, evidence: dict[str, Any]) -> dict[str, Any]:
        assert self.pair is not None
        before = self.router.weights
        if self.state == "promoted":
            stable = self.versions[self.pair.stable]
            try:
                self._set_alias("champion", stable)
            except Exception as exc:  # keep serving the promoted version: the alias says so
                evidence = {**evidence, "reason": f"moving alias 'champion' back failed: {exc}"}
                return self._record("rollback_failed", by, before, evidence)
            evidence = {**evidence, "alias": "champion", "alias_to": stable}
        self._weights(0.0)
        self.state = "rolled_back"
        self.rejected.add(self.versions[self.pair.candidate])
        return self._record("rollback", by, before, evidence)

    def start(self, version: str, by: str = "reload") -> dict[str, Any]:
        """A new candidate version (its track already swapped in at weight 0): the rollout
        begins again at the first step."""
        with self._lock:
            assert self.pair is not None
            before = self.router.weights
            self.versions[self.pair.candidate] = version
            self.step = 0 if self.kind == "canary" else -1
            self._weights(self.steps[0] if self.kind == "canary" else 0.0)
            self.state = "baking" if self.auto else "waiting"
            self._open_window()
            evidence = {
                "reason": f"new challenger v{version} against v{self.versions[self.pair.stable]}",
                "candidate": {"track": self.pair.candidate, "version": version},
            }
            return self._record("start", by, before, evidence)

    def adopt_stable(self, version: str, by: str = "reload") -> dict[str, Any]:
        """`champion` now names `version` (promoted here or elsewhere): it serves as stable,
        and the candidate slot is idle until the next challenger."""
        with self._lock:
            assert self.pair is not None
            before = self.router.weights
            previous = self.versions[self.pair.stable]
            self.versions[self.pair.stable] = version
            if self.versions[self.pair.candidate] == version or not self.active:
                self._weights(0.0)
                if self.state != "rolled_back":
                    self.state = "idle"
                self.step = -1
            evidence = {"reason": f"champion moved from v{previous} to v{version}"}
            return self._record("stable", by, before, evidence)

    def tick(self) -> dict[str, Any] | None:
        """Judge the candidate once its bake is over; the decision taken, or None."""
        with self._lock:
            if not self.auto or self.state != "baking" or time.monotonic() < self.deadline:
                return None
            verdict, evidence = self._evidence()
            if verdict == "inconclusive":
                self.extensions += 1
                evidence["extensions"] = self.extensions
                self.deadline = time.monotonic() + self.bake_time
                return self._record("inconclusive", "auto", self.router.weights, evidence)
            if verdict == "fail":
                return self._rollback("auto", evidence)
            return self._advance("auto", evidence)

    def decide(self, action: str, by: str = "admin") -> dict[str, Any]:
        """A decision asked for through the admin endpoints: `advance`, `promote`, `rollback`.

        Raises:
            RolloutConflict: the strategy has no rollout, or the action does not apply now.
        """
        with self._lock:
            if self.pair is None:
                raise RolloutConflict(
                    f"strategy '{self.kind}' has no rollout; canary and blue_green have one"
                )
            allowed = self.active or (action == "rollback" and self.state == "promoted")
            if not allowed:
                raise RolloutConflict(f"the rollout is {self.state.replace('_', ' ')}")
            _, evidence = self._evidence()
            evidence["reason"] = f"asked for by {by}"
            if action == "advance":
                return self._advance(by, evidence)
            if action == "promote":
                return self._promote(by, evidence)
            if action == "rollback":
                return self._rollback(by, evidence)
            raise RolloutConflict(f"unknown action '{action}'; advance, promote or rollback")
