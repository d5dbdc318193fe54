"""The serving series in the Prometheus text format (prometheus_client is not a dependency).

Names, labels and latency buckets come from `mlc.runtime.metrics_contract`, which the
monitoring target's rules query.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from mlc.runtime import metrics_contract as mc

QUEUE_DURATION_SECONDS = "mlc_queue_duration_seconds"
GUARD_REJECTIONS_TOTAL = "mlc_guard_rejections_total"
PREDICTIONS_TOTAL = "mlc_predictions_total"
SHADOW_DISAGREEMENTS_TOTAL = "mlc_shadow_disagreements_total"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    return repr(float(value)) if value != int(value) else f"{int(value)}.0"


class Counter:
    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._values: dict[Labels, float] = defaultdict(float)
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple((n, str(labels[n])) for n in self.label_names)
        with self._lock:
            self._values[key] += amount

    def value(self, **labels: str) -> float:
        key = tuple((n, str(labels[n])) for n in self.label_names)
        with self._lock:
            return self._values.get(key, 0.0)

    def export(self) -> list[Any]:
        with self._lock:
            return [[list(map(list, k)), v] for k, v in sorted(self._values.items())]

    def render(self, others: Sequence[list[Any]] = ()) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            merged = dict(self._values)
        for exported in others:
            for key, value in exported:
                labels = tuple((str(a), str(b)) for a, b in key)
                merged[labels] = merged.get(labels, 0.0) + float(value)
        lines += [f"{self.name}{_labels(k)} {_num(v)}" for k, v in sorted(merged.items())]
        return lines


class Histogram:
    def __init__(
        self, name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[Labels, list[int]] = {}
        self._sums: dict[Labels, float] = defaultdict(float)
        self._lock = threading.Lock()

    def observe(self, value: float, **labels: str) -> None:
        key = tuple((n, str(labels[n])) for n in self.label_names)
        with self._lock:
            counts = self._counts.setdefault(key, [0] * (len(self.buckets) + 1))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self._sums[key] += value

    def export(self) -> list[Any]:
        with self._lock:
            return [
                [list(map(list, k)), list(v), self._sums[k]]
                for k, v in sorted(self._counts.items())
            ]

    def render(self, others: Sequence[list[Any]] = ()) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            merged = {k: (list(v), self._sums[k]) for k, v in self._counts.items()}
        for exported in others:
            for key, counts, total in exported:
                labels = tuple((str(a), str(b)) for a, b in key)
                mine, mine_sum = merged.get(labels, ([0] * len(counts), 0.0))
                merged[labels] = (
                    [a + int(b) for a, b in zip(mine, counts, strict=True)],
                    mine_sum + float(total),
                )
        items = sorted((k, v[0], v[1]) for k, v in merged.items())
        for key, counts, total in items:
            bounds = [repr(float(b)) for b in self.buckets] + ["+Inf"]
            for bound, count in zip(bounds, counts, strict=True):
                le = 'le="' + bound + '"'
                lines.append(f"{self.name}_bucket{_labels(key, le)} {count}")
            lines.append(f"{self.name}_sum{_labels(key)} {total!r}")
            lines.append(f"{self.name}_count{_labels(key)} {counts[-1]}")
        return lines


class ServingMetrics:
    """Every series the serving runtime exports."""

    def __init__(self) -> None:
        model, version = mc.LABEL_MODEL, mc.LABEL_VERSION
        buckets = mc.LATENCY_BUCKETS_SECONDS
        self.requests = Counter(
            mc.REQUESTS_TOTAL, "Prediction requests.", (model, version, mc.LABEL_CODE)
        )
        self.errors = Counter(
            mc.REQUEST_ERRORS_TOTAL,
            "Failed prediction requests (5xx or model error).",
            (model, version),
        )
        self.duration = Histogram(
            mc.REQUEST_DURATION_SECONDS, "Request latency in seconds.", (model, version), buckets
        )
        self.queue = Histogram(
            QUEUE_DURATION_SECONDS,
            "Seconds a checked request waited for a scoring thread.",
            (model, version),
            buckets,
        )
        self.rejections = Counter(
            GUARD_REJECTIONS_TOTAL, "Requests refused before scoring, by rule.", (model, "rule")
        )
        self.predictions = Counter(
            PREDICTIONS_TOTAL, "Predicted rows by class.", (model, version, "class")
        )
        self.disagreements = Counter(
            SHADOW_DISAGREEMENTS_TOTAL,
            "Rows where the shadow track's answer differs from the served one.",
            (model,),
        )

    def _series(self) -> tuple[Counter | Histogram, ...]:
        return (
            self.requests,
            self.errors,
            self.duration,
            self.queue,
            self.rejections,
            self.predictions,
            self.disagreements,
        )

    def snapshot(self) -> dict[str, list[Any]]:
        """Every series' values, for the other workers of one server to add to theirs."""
        return {series.name: series.export() for series in self._series()}

    def render(self, others: Sequence[dict[str, list[Any]]] = ()) -> str:
        """The text format; `others` are the snapshots of the server's other workers, summed
        in so that any worker answers a scrape for the whole server."""
        lines: list[str] = []
        for series in self._series():
            lines += series.render([o.get(series.name) or [] for o in others])
        return "\n".join(lines) + "\n"
