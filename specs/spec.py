"""The root `Spec`: metadata plus one model per section, and the rules that span sections."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any, Literal

from pydantic import Field

from mlc.specs._base import KeyPath, Name, StrictModel, Violation
from mlc.specs.budgets import Budgets
from mlc.specs.data import Data
from mlc.specs.deployment import Deployment
from mlc.specs.evaluation import CLASSIFICATION_METRICS, REGRESSION_METRICS, Evaluation
from mlc.specs.features import Features
from mlc.specs.feedback import DriftTrigger, Feedback, PerformanceTrigger
from mlc.specs.governance import Governance
from mlc.specs.monitoring import Monitoring
from mlc.specs.security import Security
from mlc.specs.targets import TargetOptions
from mlc.specs.tracking import Tracking
from mlc.specs.training import Training
from mlc.specs.tuning import Tuning

SECTIONS = (
    "data",
    "features",
    "training",
    "tuning",
    "evaluation",
    "deployment",
    "monitoring",
    "governance",
    "security",
    "budgets",
    "feedback",
    "tracking",
    "targets",
)


API_VERSION = "mlc/v1"


class Spec(StrictModel):
    """A whole ML system: data to features to a trained, gated, deployed and watched model."""

    api_version: Literal["mlc/v1"] = Field("mlc/v1", alias="apiVersion")
    """Version of the spec language."""
    name: Name
    description: str = ""
    owners: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    overridable: tuple[str, ...] = ()
    """Dotted key paths that become run-time parameters (e.g. `training.model.params.max_iter`)."""

    data: Data
    features: Features
    training: Training
    tuning: Tuning | None = None
    evaluation: Evaluation
    deployment: Deployment | None = None
    monitoring: Monitoring | None = None
    governance: Governance = Governance()
    security: Security = Security()
    budgets: Budgets = Budgets()
    feedback: Feedback = Feedback()
    tracking: Tracking = Tracking()
    targets: TargetOptions = Field(default_factory=dict)

    def violations(self, parsed: Collection[str] | None = None) -> Iterator[Violation]:
        """Every failed cross-field rule, each with the key path it belongs to.

        `parsed` names the fields that passed their schema when others did not (the rest are
        placeholders): then only the rules that read nothing but parsed sections run, so one
        schema error does not hide the other sections' problems.
        """
        every = frozenset(type(self).model_fields)
        ok = every if parsed is None else frozenset(parsed)
        for section in SECTIONS:
            model = getattr(self, section, None) if section in ok else None
            if isinstance(model, StrictModel):
                for v in model.violations():
                    yield v.under(section)
        # each rule with the fields it reads (`every` when in doubt: it then waits for a spec
        # whose every field parsed)
        rules: tuple[tuple[frozenset[str], Callable[[], Iterator[Violation]]], ...] = (
            (frozenset({"data", "features"}), self._feature_rules),
            (frozenset({"data", "features", "monitoring"}), self._drift_feature_rules),
            (frozenset({"data", "training"}), self._training_rules),
            (frozenset({"data", "training", "tuning"}), self._spark_ml_rules),
            (frozenset({"evaluation", "training"}), lambda: self._metric_rules(ok)),
            (frozenset({"governance", "data", "training"}), self._governance_rules),
            (frozenset({"deployment", "data"}), self._batch_rules),
            (frozenset({"deployment", "governance"}), self._edge_rules),
            (every, self._overridable_rules),
        )
        for needs, rule in rules:
            if needs <= ok:
                yield from rule()

    def feature_columns(self) -> set[str]:
        """Contract columns plus derived features: every name a transform may use."""
        return set(self.data.contract.columns) | {d.name for d in self.features.derived}

    def _feature_rules(self) -> Iterator[Violation]:
        columns = set(self.data.contract.columns)
        known = self.feature_columns()
        hint = "data contract columns: " + ", ".join(sorted(columns))
        derived_names = {d.name for d in self.features.derived}
        # A derived column may be the target (`is_late: days_late > 0`): the split computes it.
        if self.features.target not in columns and self.features.target not in derived_names:
            yield Violation(
                ("features", "target"),
                "MLC201",
                f"target column '{self.features.target}' is neither in the data contract "
                "nor a derived column",
                hint,
            )
        for i, transform in enumerate(self.features.transforms):
            for j, col in enumerate(transform.columns):
                if col not in known:
                    yield Violation(
                        ("features", "transforms", i, "columns", j),
                        "MLC201",
                        f"transform column '{col}' is not in the data contract",
                        hint,
                    )
                elif col == self.features.target:
                    yield Violation(
                        ("features", "transforms", i, "columns", j),
                        "MLC205",
                        f"the target column '{col}' cannot be transformed as a feature",
                    )
        for i, derived in enumerate(self.features.derived):
            if derived.name in columns:
                yield Violation(
                    ("features", "derived", i, "name"),
                    "MLC206",
                    f"derived feature '{derived.name}' shadows a contract column",
                )
            for j, col in enumerate(derived.inputs):
                if col not in columns:
                    yield Violation(
                        ("features", "derived", i, "inputs", j),
                        "MLC201",
                        f"derived input '{col}' is not in the data contract",
                        hint,
                    )
        selection = self.features.selection
        for key in ("include", "exclude"):
            for j, col in enumerate(getattr(selection, key) or ()):
                if col not in known:
                    yield Violation(
                        ("features", "selection", key, j),
                        "MLC201",
                        f"selected column '{col}' is not in the data contract",
                        hint,
                    )

    def _drift_feature_rules(self) -> Iterator[Violation]:
        known = self.feature_columns()
        hint = "data contract columns: " + ", ".join(sorted(self.data.contract.columns))
        if self.monitoring is not None and self.monitoring.drift is not None:
            for j, col in enumerate(self.monitoring.drift.features):
                if col not in known:
                    yield Violation(
                        ("monitoring", "drift", "features", j),
                        "MLC201",
                        f"drift feature '{col}' is not in the data contract",
                        hint,
                    )

    def _batch_rules(self) -> Iterator[Violation]:
        batch = self.deployment.batch if self.deployment is not None else None
        columns = self.data.contract.columns
        if batch is not None and batch.id_column is not None and batch.id_column not in columns:
            yield Violation(
                ("deployment", "batch", "id_column"),
                "MLC201",
                f"batch id column '{batch.id_column}' is not in the data contract",
                "data contract columns: " + ", ".join(sorted(columns)),
            )

    def _edge_rules(self) -> Iterator[Violation]:
        fairness = self.governance.fairness
        mode = self.deployment.mode if self.deployment is not None else None
        if mode == "edge" and fairness is not None and fairness.mitigation != "none":
            yield Violation(
                ("governance", "fairness", "mitigation"),
                "MLC362",
                f"mitigation '{fairness.mitigation}' makes a model with no ONNX form (a "
                "randomised rule over the sensitive attributes), so mode 'edge' cannot export it",
                "set mitigation: none for an edge export (the fairness gate still checks the "
                "model), or serve it online",
            )

    def _training_rules(self) -> Iterator[Violation]:
        lightning = self.training.lightning
        if lightning.early_stopping is not None and self.data.split.validation_size == 0:
            yield Violation(
                ("training", "lightning", "early_stopping"),
                "MLC207",
                "early stopping needs a validation split, and data.split.validation_size is 0",
                "set data.split.validation_size (e.g. 0.1), or drop early_stopping",
            )

    def _spark_ml_rules(self) -> Iterator[Violation]:
        if self.training.framework != "spark_ml":
            return
        if self.data.engine != "spark":
            yield Violation(
                ("training", "framework"),
                "MLC316",
                "framework 'spark_ml' trains in Spark on the spark engine's split and "
                f"transform, and data.engine is '{self.data.engine}'",
                "set data.engine: spark (with data.spark), or a framework that trains on "
                "pandas (sklearn, xgboost, lightgbm, lightning, keras)",
            )
        if self.tuning is not None:
            yield Violation(
                ("tuning",),
                "MLC317",
                "tuning does not search spark_ml models: its trials fit scikit-learn-API "
                "estimators on pandas folds",
                "drop tuning and set training.model.params, or tune an sklearn model on a sample",
            )

    def _metric_rules(self, ok: frozenset[str]) -> Iterator[Violation]:
        """Metrics against the task, and the metrics other parsed sections (`ok`) refer to."""
        computed = set(self.evaluation.metrics)
        listed = ", ".join(self.evaluation.metrics)
        wrong = (
            REGRESSION_METRICS
            if self.training.task == "classification"
            else (CLASSIFICATION_METRICS)
        )
        for i, metric in enumerate(self.evaluation.metrics):
            if metric in wrong:
                yield Violation(
                    ("evaluation", "metrics", i),
                    "MLC341",
                    f"metric '{metric}' does not apply to a {self.training.task} task",
                )
        refs: list[tuple[KeyPath, str]] = []
        if "tuning" in ok and self.tuning is not None:
            refs.append((("tuning", "objective", "metric"), self.tuning.objective.metric))
        perf = self.monitoring.performance if "monitoring" in ok and self.monitoring else None
        if perf is not None:
            refs.append((("monitoring", "performance", "metric"), perf.metric))
        triggers = self.feedback.triggers if "feedback" in ok else ()
        for i, trigger in enumerate(triggers):
            if isinstance(trigger, PerformanceTrigger):
                refs.append((("feedback", "triggers", i, "metric"), trigger.metric))
        for loc, metric in refs:
            if metric not in computed:
                yield Violation(
                    loc,
                    "MLC202",
                    f"metric '{metric}' is not computed by evaluation",
                    f"use one of: {listed}, or add it to evaluation.metrics",
                )
        if not {"feedback", "monitoring"} <= ok:
            return
        for i, trigger in enumerate(self.feedback.triggers):
            if isinstance(trigger, DriftTrigger) and (
                self.monitoring is None or self.monitoring.drift is None
            ):
                yield Violation(
                    ("feedback", "triggers", i, "kind"),
                    "MLC380",
                    "a drift trigger needs drift monitoring",
                    "add monitoring.drift (method, threshold, features)",
                )

    def _governance_rules(self) -> Iterator[Violation]:
        fairness = self.governance.fairness
        if fairness is None:
            return
        columns = self.data.contract.columns
        for j, attr in enumerate(fairness.sensitive_attributes):
            if attr not in columns:
                yield Violation(
                    ("governance", "fairness", "sensitive_attributes", j),
                    "MLC203",
                    f"sensitive attribute '{attr}' is not in the data contract",
                    "data contract columns: " + ", ".join(sorted(columns)),
                )
        if self.training.task != "classification":
            yield Violation(
                ("governance", "fairness", "metric"),
                "MLC371",
                f"fairness metric '{fairness.metric}' needs a classification task",
            )

    def _overridable_rules(self) -> Iterator[Violation]:
        dumped = self.model_dump(by_alias=True, mode="json")
        for i, path in enumerate(self.overridable):
            if not _has_path(dumped, path):
                yield Violation(
                    ("overridable", i),
                    "MLC204",
                    f"overridable key '{path}' does not exist in this spec",
                    "write a dotted path to a value, e.g. 'training.model.params.max_iter'",
                )


def _has_path(tree: Any, dotted: str) -> bool:
    node = tree
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return not isinstance(node, dict | list)
