"""The cost estimator: line items over the IR, priced from a `PricingTable`.

Model (each number's origin is in its line item's `detail`):
- training: hours (`training.max_time`, else the table's default) x instance $/h x nodes;
- tuning: trials x trial hours x instance $/h, where the wall clock of `parallelism` workers is
  capped by `tuning.timeout` (then: timeout x parallelism x $/h);
- pipeline runs per month: the retraining schedules (at least the table's `min_runs_per_month`);
- serving: replicas x hours per month x $/h (scale-to-zero bills the table's active fraction);
- batch jobs and scheduled monitoring jobs: runs per month (from cron) x job hours x $/h;
- storage: the table's GB assumption x $/GB-month.
Instances are the cheapest type in the region that fits the requested CPU, memory and GPUs.

Only what the selected targets emit is priced (`Emission`; none selected: everything the spec
describes). A line the table has no price for (a region or instance type missing, a cloud such
as `onprem` that has no prices) is kept with its cost unknown, never as $0: totals are then
lower bounds, and the budget pass does not call a cap kept that it could not check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlc.compiler.cost.pricing import Instance, PricingTable, cpu_cores, load_pricing, memory_gib
from mlc.compiler.diagnostics import Diagnostic, Severity, did_you_mean
from mlc.compiler.ir import IRGraph, Resources, StepKind

if TYPE_CHECKING:
    from mlc.targets.base import Target

DAYS_PER_MONTH = 365.25 / 12
WEEKS_PER_MONTH = DAYS_PER_MONTH / 7


@dataclass(frozen=True)
class LineItem:
    """One priced part of the system."""

    name: str
    """`training`, `tuning`, `serving`, `batch`, `monitoring`, `storage`."""
    per_run_usd: float
    """Cost of one pipeline run (0 for standing costs)."""
    monthly_usd: float
    path: str
    """Dotted spec key path the cost comes from (for diagnostics)."""
    detail: str
    instance: str | None = None
    gpu_hours_per_month: float = 0.0
    priced: bool = True
    """False when the pricing table has no price for it: its USD figures are then 0 here and
    `null` in JSON, and every total that includes it is a lower bound."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "per_run_usd": round(self.per_run_usd, 2) if self.priced else None,
            "monthly_usd": round(self.monthly_usd, 2) if self.priced else None,
            "priced": self.priced,
            "path": self.path,
            "detail": self.detail,
            "instance": self.instance,
            "gpu_hours_per_month": round(self.gpu_hours_per_month, 2),
        }


@dataclass(frozen=True)
class Emission:
    """What the selected targets turn into output: step kinds, and the `TARGET_SETTINGS` they
    act on (`mlc.compiler.passes.capabilities`). Cost and plan count nothing else."""

    targets: tuple[str, ...]
    kinds: frozenset[StepKind]
    settings: frozenset[str]

    @classmethod
    def of(cls, targets: Sequence[Target]) -> Emission | None:
        """The emission of `targets`; None (everything) when none of them realises anything."""
        real = [t for t in targets if not t.inspection]
        if not real:
            return None
        return cls(
            tuple(sorted(t.name for t in real)),
            frozenset(k for t in real for k in t.capabilities.realises),
            frozenset(s for t in real for s in t.capabilities.settings),
        )


@dataclass
class CostEstimate:
    """The breakdown, its totals and the problems met while pricing."""

    cloud: str
    region: str | None
    pricing: str
    items: list[LineItem] = field(default_factory=list)
    runs_per_month: float = 0.0
    diagnostics: list[Diagnostic] = field(default_factory=list)
    targets: tuple[str, ...] | None = None
    """The selected targets whose output is priced (None: everything the spec describes)."""
    left_out: list[str] = field(default_factory=list)
    """Parts of the spec not priced because no selected target emits them, with the reason."""

    @property
    def unknown(self) -> list[LineItem]:
        """Lines the pricing table has no price for."""
        return [i for i in self.items if not i.priced]

    @property
    def estimated(self) -> bool:
        """False when nothing could be priced (e.g. `onprem`): there is no estimate at all."""
        return any(i.priced for i in self.items)

    @property
    def monthly_usd(self) -> float:
        return sum(i.monthly_usd for i in self.items)

    @property
    def per_run_usd(self) -> float:
        return sum(i.per_run_usd for i in self.items)

    @property
    def gpu_hours_per_month(self) -> float:
        return sum(i.gpu_hours_per_month for i in self.items)

    def item(self, name: str) -> LineItem | None:
        return next((i for i in self.items if i.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "cloud": self.cloud,
            "region": self.region,
            "pricing": self.pricing,
            "runs_per_month": round(self.runs_per_month, 3),
            "per_run_usd": round(self.per_run_usd, 2) if self.estimated else None,
            "monthly_usd": round(self.monthly_usd, 2) if self.estimated else None,
            "complete": not self.unknown,
            "unknown_items": [i.name for i in self.unknown],
            "gpu_hours_per_month": round(self.gpu_hours_per_month, 2),
            "items": [i.to_json() for i in self.items],
            "targets": list(self.targets) if self.targets is not None else None,
            "left_out": list(self.left_out),
        }

    def total_text(self) -> str:
        """`$19.64/month, $0.03 per pipeline run`, `at least …` with unknown lines, or `not
        estimated`."""
        if not self.estimated:
            return "not estimated (" + self.unknown_reason() + ")"
        text = f"${self.monthly_usd:,.2f}/month, ${self.per_run_usd:,.2f} per pipeline run"
        if self.unknown:
            n = len(self.unknown)
            text = f"at least {text} ({n} line{'s' if n > 1 else ''} unknown: " + (
                ", ".join(i.name for i in self.unknown) + ")"
            )
        return text

    def unknown_reason(self) -> str:
        """Why lines are unknown: the cloud, the region or an instance type lacks prices."""
        paths = {d.path for d in self.diagnostics}
        if "deployment.cloud" in paths:
            return f"no prices for '{self.cloud}'"
        if "deployment.region" in paths:
            return f"no prices for {self.cloud}/{self.region}"
        return f"no instance type priced for {self.cloud}/{self.region} fits them"

    def render_text(self, name: str) -> str:
        """The table `mlc cost` prints."""
        scope = ", ".join(self.targets) if self.targets is not None else "the whole spec"
        lines = [f"{name}: {self.cloud}/{self.region}, prices {self.pricing}; priced for {scope}"]

        def usd(value: float, priced: bool) -> str:
            return f"{value:>10,.2f}" if priced else f"{'unknown':>10}"

        for item in self.items:
            lines.append(
                f"  {item.name:<11} {usd(item.per_run_usd, item.priced)} /run "
                f"{usd(item.monthly_usd, item.priced)} /month  {item.instance or '-':<14} "
                f"{item.detail}"
            )
        lines.append(
            f"  {'total':<11} {usd(self.per_run_usd, self.estimated)} /run "
            f"{usd(self.monthly_usd, self.estimated)} /month  "
            f"({self.runs_per_month:.2f} pipeline runs/month)"
        )
        lines.append(f"  estimate: {self.total_text()}")
        lines += [f"  not priced: {part}" for part in self.left_out]
        return "\n".join(lines) + "\n"


def cron_runs_per_month(cron: str) -> float:
    """How often a cron schedule fires in an average month.

    >>> round(cron_runs_per_month("@daily"), 2)
    30.44
    >>> round(cron_runs_per_month("0 3 * * 1"), 2)
    4.35
    """
    named = {
        "@hourly": 24 * DAYS_PER_MONTH,
        "@daily": DAYS_PER_MONTH,
        "@weekly": WEEKS_PER_MONTH,
        "@monthly": 1.0,
        "@yearly": 1 / 12,
    }
    if cron in named:
        return named[cron]
    fields = cron.split()
    if len(fields) != 5:
        return 0.0
    minute, hour, dom, month, dow = (
        _count(f, lo, hi)
        for f, (lo, hi) in zip(fields, ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6)), strict=True)
    )
    if fields[2] == "*" and fields[4] == "*":
        days = DAYS_PER_MONTH
    elif fields[4] == "*":
        days = dom
    elif fields[2] == "*":
        days = dow * WEEKS_PER_MONTH
    else:
        days = dom + dow * WEEKS_PER_MONTH
    return minute * hour * days * (month / 12)


def _count(spec: str, lo: int, hi: int) -> float:
    """Values a cron field takes (names such as MON count as one value)."""
    total = 0.0
    for part in spec.split(","):
        base, _, step = part.partition("/")
        stride = int(step) if step.isdigit() and int(step) > 0 else 1
        if base in ("*", "?"):
            first, last = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = (int(a), int(b)) if a.isdigit() and b.isdigit() else (0, 0)
        else:
            first = last = int(base) if base.isdigit() else lo
            if step:
                last = hi
        total += max(0, (last - first) // stride + 1)
    return total


def _region_hint(region: str, priced: list[str]) -> str:
    close = did_you_mean(region, priced)
    return (
        (f"{close} " if close.startswith("did you mean") else "")
        + f"Priced regions: {', '.join(priced)}. To price this one, add it to a copy of the "
        "table and pass that with --pricing FILE"
    )


class _Pricer:
    def __init__(
        self, table: PricingTable, cloud: str, region: str | None, spot: bool, out: list[Diagnostic]
    ) -> None:
        self.table, self.cloud, self.region, self.spot, self.out = table, cloud, region, spot, out
        self.priced = region is not None and table.region(cloud, region) is not None

    def pick(self, res: Resources, path: str) -> Instance | None:
        """The cheapest instance that fits, or None (cost unknown: the table has a hole)."""
        if not self.priced or self.region is None:
            return None
        cpu = cpu_cores(res.cpu) or self.table.assume("default_cpu")
        mem = memory_gib(res.memory) or self.table.assume("default_memory_gib")
        fits = [
            i
            for i in self.table.instances(self.cloud, self.region)
            if i.vcpu >= cpu
            and i.memory_gib >= mem
            and i.gpu_count >= res.gpu_count
            and (res.gpu_count == 0 or res.gpu_type is None or i.gpu_type == res.gpu_type)
            and (res.gpu_count > 0 or i.gpu_count == 0)
        ]
        if not fits:
            need = f"{cpu:g} vCPU, {mem:g} GiB"
            if res.gpu_count:
                need += f", {res.gpu_count} x {res.gpu_type or 'any GPU'}"
            types = sorted(
                {i.gpu_type for i in self.table.instances(self.cloud, self.region) if i.gpu_type}
            )
            # A hole in the table, not in the spec: the line is priced as unknown
            self.out.append(
                Diagnostic(
                    "MLC631",
                    f"pricing table {self.table.name} has no instance type in "
                    f"{self.cloud}/{self.region} with {need}; its cost is unknown",
                    None,
                    "GPU types priced there: "
                    + (", ".join(types) or "none")
                    + "; add the instance type to the table (--pricing FILE) or change "
                    "the resources",
                    Severity.WARNING,
                    path,
                )
            )
            return None
        return min(fits, key=lambda i: (i.price(self.spot), i.name))

    def hourly(self, inst: Instance | None) -> float:
        return inst.price(self.spot) if inst is not None else 0.0

    def rate(self, inst: Instance | None) -> str:
        return f"${inst.price(self.spot):g}/h" if inst is not None else "$?/h (no price)"


def estimate_cost(
    ir: IRGraph,
    pricing: PricingTable | None = None,
    spot: bool = False,
    emits: Emission | None = None,
) -> CostEstimate:
    """Price the system described by `ir`; problems are returned as located-by-path diagnostics.

    Args:
        ir: the IR of a validated spec.
        pricing: the pricing table (the shipped one by default).
        spot: price training, tuning and batch jobs at spot rates.
        emits: what the selected targets emit (`Emission.of(targets)`); None prices everything.
    """
    table = pricing or load_pricing()
    storage_step = ir.first(StepKind.STORAGE)
    cloud = str(storage_step.params.get("cloud")) if storage_step else "onprem"
    region_raw = storage_step.params.get("region") if storage_step else None
    region = str(region_raw) if region_raw is not None else None
    est = CostEstimate(
        cloud,
        region,
        f"{table.name} ({table.date})",
        targets=emits.targets if emits is not None else None,
    )
    if cloud not in table.clouds:
        est.diagnostics.append(
            Diagnostic(
                "MLC632",
                f"no prices for cloud '{cloud}' in pricing table {table.name}; costs are "
                "not estimated",
                None,
                "budgets cannot be checked without prices; pass a table that prices it "
                "(--pricing FILE)",
                Severity.WARNING,
                "deployment.cloud",
            )
        )
    elif region is None or table.region(cloud, region) is None:
        est.diagnostics.append(
            Diagnostic(
                "MLC631",
                f"pricing table {table.name} has no region '{region}' for cloud '{cloud}'; "
                "the lines priced there are unknown",
                None,
                _region_hint(str(region), table.regions(cloud)),
                Severity.WARNING,
                "deployment.region",
            )
        )
    heavy = _Pricer(table, cloud, region, spot, est.diagnostics)
    standing = _Pricer(table, cloud, region, False, est.diagnostics)
    hours_month = table.assume("hours_per_month")

    def emitted(kind: StepKind, line: str) -> bool:
        if emits is None or kind in emits.kinds:
            return True
        est.left_out.append(
            f"{line} ('{kind.value}' is emitted by none of: {', '.join(emits.targets)})"
        )
        return False

    runs = 0.0
    trigger = ir.first(StepKind.RETRAIN_TRIGGER)
    for t in (trigger.params.get("triggers") or []) if trigger else []:
        if t.get("kind") == "schedule":
            runs += cron_runs_per_month(str(t.get("cron")))
    est.runs_per_month = max(runs, table.assumptions.get("min_runs_per_month", 1.0))

    train = ir.first(StepKind.TRAIN)
    trial_hours = table.assume("default_training_hours")
    if train is not None and train.timeout_s:
        trial_hours = train.timeout_s / 3600
    if train is not None and emitted(StepKind.TRAIN, "training"):
        inst = heavy.pick(train.resources, "training.resources")
        nodes = train.resources.nodes
        per_run = trial_hours * heavy.hourly(inst) * nodes
        gpu_h = trial_hours * train.resources.gpu_count * nodes * est.runs_per_month
        est.items.append(
            LineItem(
                "training",
                per_run,
                per_run * est.runs_per_month,
                "training.resources",
                f"{trial_hours:g} h x {nodes} node(s) x {heavy.rate(inst)}, "
                f"{est.runs_per_month:.2f} run(s)/month",
                inst.name if inst else None,
                gpu_h,
                priced=inst is not None,
            )
        )
    tune = ir.first(StepKind.TUNE)
    if tune is not None and emitted(StepKind.TUNE, "tuning"):
        inst = heavy.pick(tune.resources, "training.resources")
        trials = int(tune.params.get("trials", 1))
        parallel = int(tune.params.get("parallelism", 1))
        wall = trials * trial_hours / parallel
        timeout = tune.params.get("timeout")
        if timeout:
            wall = min(wall, float(timeout) / 3600)
        machine_hours = wall * parallel * tune.resources.nodes
        per_run = machine_hours * heavy.hourly(inst)
        est.items.append(
            LineItem(
                "tuning",
                per_run,
                per_run * est.runs_per_month,
                "tuning.trials",
                f"{trials} trials x {trial_hours:g} h / {parallel} parallel = {wall:.3g} h wall"
                + (
                    " (capped by timeout)"
                    if timeout and wall < trials * trial_hours / parallel
                    else ""
                )
                + f" x {parallel} worker(s) x {heavy.rate(inst)}",
                inst.name if inst else None,
                machine_hours * tune.resources.gpu_count * est.runs_per_month,
                priced=inst is not None,
            )
        )
    deploy = ir.first(StepKind.DEPLOY)
    if deploy is not None and emitted(StepKind.DEPLOY, "serving"):
        inst = standing.pick(deploy.resources, "deployment.resources")
        auto = deploy.params.get("autoscaling") or {}
        replicas = float(auto.get("min_replicas", 1))
        note = f"{replicas:g} replica(s) x {hours_month:g} h"
        if auto.get("scale_to_zero"):
            replicas = max(replicas, 1.0) * table.assume("scale_to_zero_active_fraction")
            note = (
                f"scale to zero: {replicas:g} replica-equivalents (active fraction) x "
                f"{hours_month:g} h"
            )
        monthly = replicas * hours_month * standing.hourly(inst)
        est.items.append(
            LineItem(
                "serving",
                0.0,
                monthly,
                "deployment.autoscaling.min_replicas",
                f"{note} x {standing.rate(inst)}",
                inst.name if inst else None,
                replicas * hours_month * deploy.resources.gpu_count,
                priced=inst is not None,
            )
        )
    batch = ir.first(StepKind.BATCH_PREDICT)
    if batch is not None and emitted(StepKind.BATCH_PREDICT, "batch"):
        inst = heavy.pick(batch.resources, "deployment.resources")
        sched = str((batch.params.get("batch") or {}).get("schedule", "@daily"))
        n = cron_runs_per_month(sched)
        hours = table.assume("default_training_hours")
        est.items.append(
            LineItem(
                "batch",
                0.0,
                n * hours * heavy.hourly(inst),
                "deployment.batch.schedule",
                f"{n:.2f} job(s)/month x {hours:g} h x {heavy.rate(inst)}",
                inst.name if inst else None,
                n * hours * batch.resources.gpu_count,
                priced=inst is not None,
            )
        )
    monitor = ir.first(StepKind.MONITOR)
    if monitor is not None:
        jobs = 0.0
        for key in ("drift", "performance"):
            part = monitor.params.get(key)
            setting = f"monitoring.{key}.schedule"
            if not part:
                continue
            if emits is not None and setting not in emits.settings:
                est.left_out.append(
                    f"scheduled {key} jobs ('{setting}' is acted on by none of: "
                    f"{', '.join(emits.targets)})"
                )
                continue
            jobs += cron_runs_per_month(str(part.get("schedule", "@daily")))
        if jobs:
            inst = standing.pick(Resources(), "monitoring")
            hours = table.assume("monitoring_job_hours")
            est.items.append(
                LineItem(
                    "monitoring",
                    0.0,
                    jobs * hours * standing.hourly(inst),
                    "monitoring",
                    f"{jobs:.1f} scheduled job(s)/month x {hours:g} h x {standing.rate(inst)}",
                    inst.name if inst else None,
                    priced=inst is not None,
                )
            )
    if storage_step is not None and emitted(StepKind.STORAGE, "storage"):
        gb = table.assume("storage_gb")
        price = table.storage_price(cloud, region) if standing.priced and region else 0.0
        est.items.append(
            LineItem(
                "storage",
                0.0,
                gb * price,
                "data.versioning",
                f"{gb:g} GB x " + (f"${price:g}/GB-month" if standing.priced else "$?/GB-month"),
                priced=standing.priced,
            )
        )
    return est
