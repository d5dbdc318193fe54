"""The Grafana dashboard of one model, built with `grafana-foundation-sdk`.

Rows: serving (latency, throughput, errors, traffic per model version), data (drift per
feature, performance against its floor) and cost (spend against each budget). Every query reads
the series of `mlc.runtime.metrics_contract`. The SDK is imported here only, when the monitoring
target emits.
"""

from __future__ import annotations

import json
from typing import Any

from mlc.runtime import metrics_contract
from mlc.targets._k8s_common import dns_name
from mlc.targets.monitoring.rules import BUDGET_KEYS, duration


def build_dashboard(monitor: dict[str, Any], rollout: dict[str, Any] | None) -> str:
    """Dashboard JSON (sorted keys, two-space indent) for the IR `monitor` step's params."""
    from grafana_foundation_sdk.builders import dashboard, timeseries
    from grafana_foundation_sdk.builders import prometheus as prom
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import (
        DataSourceRef,
        GridPos,
        Threshold,
        ThresholdsMode,
    )

    model = str(monitor["model_name"])
    window = duration(float(monitor["slos"]["window"]))
    sel = f'{metrics_contract.LABEL_MODEL}="{model}"'
    throughput = metrics_contract.RECORD_THROUGHPUT
    source = DataSourceRef(type_val="prometheus", uid="${datasource}")
    layout = {"y": 0, "x": 0}

    def place(width: int = 12) -> GridPos:
        if layout["x"] + width > 24:
            layout["x"], layout["y"] = 0, layout["y"] + 8
        pos = GridPos(h=8, w=width, x=layout["x"], y=layout["y"])
        layout["x"] += width
        return pos

    def row(title: str) -> Any:
        if layout["x"]:
            layout["x"], layout["y"] = 0, layout["y"] + 8
        layout["y"] += 1
        return dashboard.Row(title).grid_pos(GridPos(h=1, w=24, x=0, y=layout["y"] - 1))

    def panel(
        title: str,
        unit: str,
        queries: list[tuple[str, str]],
        limit: float | None = None,
        below: bool = False,
    ) -> Any:
        """A time series panel; `limit` colours it red beyond (or, with `below`, under) it."""
        p = timeseries.Panel().title(title).unit(unit).datasource(source).grid_pos(place())
        for i, (expr, legend) in enumerate(queries):
            p = p.with_target(
                prom.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i))
            )
        if limit is not None:
            ok, bad = ("red", "green") if below else ("green", "red")
            p = p.thresholds(
                dashboard.ThresholdsConfig()
                .mode(ThresholdsMode.ABSOLUTE)
                .steps([Threshold(value=None, color=ok), Threshold(value=limit, color=bad)])
            )
        return p

    slos = monitor["slos"]
    version = "{{" + metrics_contract.LABEL_VERSION + "}}"
    board = (
        dashboard.Dashboard(f"{model} (mlc)")
        .uid(dns_name(f"mlc-{model}")[:40])
        .tags(["mlc", model])
        .editable()
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("utc")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
        .with_row(row("Serving"))
        .with_panel(
            panel(
                "Latency p99 / p50",
                "s",
                [
                    (f"{metrics_contract.RECORD_LATENCY_P99}{{{sel}}}", f"p99 {version}"),
                    (f"{metrics_contract.RECORD_LATENCY_P50}{{{sel}}}", f"p50 {version}"),
                ],
                float(slos["latency_p99_ms"]) / 1000 if slos.get("latency_p99_ms") else None,
            )
        )
        .with_panel(
            panel(
                "Throughput", "reqps", [(f"{metrics_contract.RECORD_THROUGHPUT}{{{sel}}}", version)]
            )
        )
        .with_panel(
            panel(
                "Error rate",
                "percentunit",
                [(f"{metrics_contract.RECORD_ERROR_RATIO}{{{sel}}}", version)],
                float(slos["error_rate"]) if slos.get("error_rate") is not None else None,
            )
        )
        .with_panel(
            panel(
                "Traffic share per model version",
                "percentunit",
                [
                    (
                        f"{throughput}{{{sel}}} / ignoring({metrics_contract.LABEL_VERSION}) "
                        f"group_left sum by ({metrics_contract.LABEL_MODEL}) "
                        f"({throughput}{{{sel}}})",
                        version,
                    )
                ],
            )
        )
    )
    drift = monitor.get("drift")
    perf = monitor.get("performance")
    if drift or perf:
        board = board.with_row(row("Data and model quality"))
    if drift:
        feats = "|".join(sorted(drift.get("features") or ()))
        board = board.with_panel(
            panel(
                f"Drift per feature ({drift['method']})",
                "none",
                [
                    (
                        f'{metrics_contract.FEATURE_DRIFT_SCORE}{{{sel},{metrics_contract.LABEL_FEATURE}=~"{feats}"}}',
                        "{{" + metrics_contract.LABEL_FEATURE + "}}",
                    )
                ],
                float(drift["threshold"]),
            )
        )
    if perf:
        board = board.with_panel(
            panel(
                f"{perf['metric']} on labelled traffic",
                "none",
                [
                    (
                        f'{metrics_contract.MODEL_PERFORMANCE}{{{sel},{metrics_contract.LABEL_METRIC}="{perf["metric"]}"}}',
                        perf["metric"],
                    )
                ],
                float(perf["floor"]),
                # green on the better side of the floor: below it for rmse, above for accuracy
                below=perf["direction"] == "higher",
            )
        )
    budgets = monitor.get("budgets") or {}
    board = board.with_row(row("Cost"))
    board = board.with_panel(
        panel(
            "Spend this month",
            "currencyUSD",
            [
                (
                    f"{metrics_contract.SPEND_USD}{{{sel}}}",
                    "{{" + metrics_contract.LABEL_BUDGET + "}}",
                )
            ],
        )
    )
    if any(budgets.get(key) for key in BUDGET_KEYS):
        board = board.with_panel(
            panel(
                "Budget burn",
                "percentunit",
                [
                    (
                        f"{metrics_contract.RECORD_BUDGET_BURN}{{{sel}}}",
                        "{{" + metrics_contract.LABEL_BUDGET + "}}",
                    )
                ],
                1.0,
            )
        )
    built = json.loads(JSONEncoder().encode(board.build()))
    if rollout:
        built["description"] = (
            f"{model}: SLO window {window}; rollout {rollout.get('kind', 'recreate')}"
        )
    else:
        built["description"] = f"{model}: SLO window {window}"
    return json.dumps(built, indent=2, sort_keys=True) + "\n"
