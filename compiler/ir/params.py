"""The params of each step kind, as typed definitions: the contract a target or runtime step reads.

A step's `params` travel as JSON (`ir.json`, KFP component arguments) and runtime steps read them
as plain dicts, so the contract is a `TypedDict` per step kind: free at run time, checked by mypy
where the builder writes them, and checked by `IRGraph.from_dict` (`check_params`) where an IR is
read back. `PARAMS_BY_KIND` maps each `StepKind` to its type.

Every key carries its documentation as `Annotated[type, Doc(...)]`; the reference
(`compiler/ir/REFERENCE.md`, `python -m mlc.compiler.ir.reference`) is generated from these
definitions. Defaults are never written here: every key is present in the IR (the builder copies
the resolved spec), and the reference reads the defaults from the spec models (`SPEC_MODELS` and
`Doc.spec` say which spec field a key comes from).

Runtime code imports this module only under `if TYPE_CHECKING:` (the runtime never imports the
compiler at run time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from mlc.compiler.ir.model import StepKind


@dataclass(frozen=True, slots=True)
class Doc:
    """Documentation of one params key (metadata of its `Annotated` type)."""

    text: str
    spec: str | None = None
    """Dotted spec field the value is copied from (`training.seed`), whose default the
    reference shows; None when the builder derives the value."""


# -- shared value types ----------------------------------------------------------------------------

Engine = Literal["pandas", "spark"]
DType = Literal["int", "float", "str", "bool", "category", "datetime"]
Task = Literal["classification", "regression"]
Framework = Literal["sklearn", "lightning", "custom", "xgboost", "lightgbm", "keras", "spark_ml"]
Direction = Literal["higher", "lower"]
"""Which way a metric is better, from the spec's one metric table (`mlc.specs.evaluation`)."""
Comparison = Literal[">", ">=", "<", "<=", "==", "!="]
Cloud = Literal["aws", "gcp", "azure", "onprem"]
Scalar = str | int | float | bool


# -- data ------------------------------------------------------------------------------------------


class CsvSourceParams(TypedDict):
    """A CSV source (`data.sources[i]` with `format: csv`)."""

    format: Annotated[Literal["csv"], Doc("Source format; selects the reader.")]
    name: Annotated[str, Doc("Source name; the first source is the training table.")]
    join_on: Annotated[list[str], Doc("Columns joining this source to the first one.")]
    path: Annotated[str, Doc("Path relative to the spec file, or an fsspec URL.")]
    delimiter: Annotated[str, Doc("Field delimiter.")]


class ParquetSourceParams(TypedDict):
    """A Parquet source (`format: parquet`)."""

    format: Annotated[Literal["parquet"], Doc("Source format; selects the reader.")]
    name: Annotated[str, Doc("Source name; the first source is the training table.")]
    join_on: Annotated[list[str], Doc("Columns joining this source to the first one.")]
    path: Annotated[str, Doc("Path relative to the spec file, or an fsspec URL.")]


class SqlSourceParams(TypedDict):
    """A SQL query source (`format: sql`)."""

    format: Annotated[Literal["sql"], Doc("Source format; selects the reader.")]
    name: Annotated[str, Doc("Source name; the first source is the training table.")]
    join_on: Annotated[list[str], Doc("Columns joining this source to the first one.")]
    url: Annotated[str, Doc("SQLAlchemy URL; passwords come from `security.secrets`.")]
    query: Annotated[str, Doc("The query whose result is the table.")]


class SparkTableSourceParams(TypedDict):
    """A Spark catalog table (`format: spark_table`, needs `engine: spark`)."""

    format: Annotated[Literal["spark_table"], Doc("Source format; selects the reader.")]
    name: Annotated[str, Doc("Source name; the first source is the training table.")]
    join_on: Annotated[list[str], Doc("Columns joining this source to the first one.")]
    table: Annotated[str, Doc("Table in the Spark catalog, e.g. `warehouse.applications`.")]


SourceParams = CsvSourceParams | ParquetSourceParams | SqlSourceParams | SparkTableSourceParams


class VersioningParams(TypedDict):
    """How dataset versions are named and kept (`data.versioning`)."""

    strategy: Annotated[
        Literal["content_hash", "snapshot", "none"],
        Doc("`content_hash` names a version by its sha256; `snapshot` also copies it."),
    ]
    keep: Annotated[int, Doc("How many versions to keep.")]


class SparkParams(TypedDict):
    """Where the spark engine runs (`data.spark`); `MLC_SPARK_MASTER` overrides `master`."""

    master: Annotated[str, Doc("Spark master URL.")]
    conf: Annotated[dict[str, str], Doc("Spark configuration.")]


class ColumnParams(TypedDict):
    """The data contract of one column (`data.contract.columns.<name>`)."""

    dtype: Annotated[DType, Doc("Logical type the column is checked and cast to.")]
    nullable: Annotated[bool, Doc("Whether missing values are allowed.")]
    min: Annotated[float | None, Doc("Smallest allowed value (numeric columns).")]
    max: Annotated[float | None, Doc("Largest allowed value (numeric columns).")]
    allowed: Annotated[list[Scalar] | None, Doc("The only values the column may hold.")]
    unique: Annotated[bool, Doc("Whether values must be unique.")]
    regex: Annotated[str | None, Doc("Pattern every value must match in full.")]
    pii: Annotated[bool, Doc("Personal data: a feature only when pseudonymised.")]
    description: Annotated[str, Doc("Free text for the model card and registry schema.")]


class ContractParams(TypedDict):
    """The data contract (`data.contract`)."""

    columns: Annotated[dict[str, ColumnParams], Doc("Column name -> its contract.")]
    on_failure: Annotated[
        Literal["stop", "quarantine", "warn"],
        Doc("`stop` the run, `quarantine` failing rows and go on, or only `warn`."),
    ]


class SplitMinimumParams(TypedDict):
    """Least data each part of the split must hold (`data.split.minimum`)."""

    train_rows: Annotated[int, Doc("Rows the train split needs.")]
    validation_rows: Annotated[int, Doc("Rows the validation split needs, when there is one.")]
    test_rows: Annotated[int, Doc("Rows the test split needs.")]
    per_class: Annotated[int, Doc("Rows per class in train, test and each CV fold.")]
    per_group: Annotated[int, Doc("Test rows per group of each sensitive attribute.")]
    enforce: Annotated[
        Literal["error", "warn"], Doc("`error` stops at the split on a shortfall; `warn` goes on.")
    ]


class DerivedParams(TypedDict):
    """A derived column (`features.derived[i]`)."""

    name: Annotated[str, Doc("Name of the new column.")]
    expr: Annotated[str, Doc("pandas `DataFrame.eval` expression over contract columns.")]
    inputs: Annotated[list[str], Doc("Columns the expression reads.")]


class IngestParams(TypedDict):
    """`ingest`: read one source into a dataset."""

    source: Annotated[SourceParams, Doc("The source, by `format`.")]
    engine: Annotated[Engine, Doc("DataFrame engine.", spec="data.engine")]
    versioning: Annotated[VersioningParams, Doc("Dataset versioning.")]
    spark: NotRequired[
        Annotated[SparkParams, Doc("Spark settings; present when the engine is spark.")]
    ]


class ValidateParams(TypedDict):
    """`validate`: join the sources and check the data contract."""

    contract: Annotated[ContractParams, Doc("The data contract.")]
    engine: Annotated[Engine, Doc("DataFrame engine.", spec="data.engine")]
    sources: Annotated[list[str], Doc("Source names in spec order; the first is the base table.")]
    join_on: Annotated[
        dict[str, list[str]], Doc("Source name -> join columns, for every source but the first.")
    ]
    spark: NotRequired[
        Annotated[SparkParams, Doc("Spark settings; present when the engine is spark.")]
    ]


class SplitParams(TypedDict):
    """`split`: train/validation/test parts, checked against what later steps need."""

    method: Annotated[
        Literal["random", "stratified", "time", "hash"], Doc("How rows are assigned to parts.")
    ]
    test_size: Annotated[float, Doc("Share of rows in the test part.")]
    validation_size: Annotated[float, Doc("Share of rows in the validation part (0: none).")]
    seed: Annotated[int, Doc("Seed of the random assignment.")]
    stratify_by: Annotated[str | None, Doc("Column to stratify on (None: the target).")]
    time_column: Annotated[str | None, Doc("Column ordering rows for `method: time`.")]
    minimum: Annotated[SplitMinimumParams, Doc("Minimum rows per part, class and group.")]
    target: Annotated[str, Doc("The label column.", spec="features.target")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]
    gates: Annotated[int, Doc("Number of evaluation gates (a test part is judged by them).")]
    cv_folds: Annotated[
        int | None, Doc("Tuning cross-validation folds of the train part (None: no tuning).")
    ]
    sensitive_attributes: Annotated[
        list[str], Doc("Fairness attributes whose groups the test part must hold.")
    ]
    derived_target: NotRequired[
        Annotated[
            DerivedParams, Doc("Present when the target is derived: computed before splitting.")
        ]
    ]
    key: NotRequired[
        Annotated[
            str, Doc("Key column whose hash assigns rows (`method: hash`).", spec="data.split.key")
        ]
    ]
    engine: NotRequired[
        Annotated[Engine, Doc("DataFrame engine; present when it is spark.", spec="data.engine")]
    ]
    spark: NotRequired[
        Annotated[SparkParams, Doc("Spark settings; present when the engine is spark.")]
    ]


# -- features --------------------------------------------------------------------------------------


class ScaleParams(TypedDict):
    """`op: scale`."""

    op: Annotated[Literal["scale"], Doc("Transform kind.")]
    columns: Annotated[list[str], Doc("Columns transformed.")]
    method: Annotated[Literal["standard", "minmax", "robust"], Doc("Scaler.")]


class OneHotParams(TypedDict):
    """`op: one_hot`."""

    op: Annotated[Literal["one_hot"], Doc("Transform kind.")]
    columns: Annotated[list[str], Doc("Columns transformed.")]
    max_categories: Annotated[int | None, Doc("Most categories kept per column (None: all).")]
    handle_unknown: Annotated[Literal["ignore", "error"], Doc("What an unseen category does.")]


class BucketizeParams(TypedDict):
    """`op: bucketize`."""

    op: Annotated[Literal["bucketize"], Doc("Transform kind.")]
    columns: Annotated[list[str], Doc("Columns transformed.")]
    bins: Annotated[int | list[float], Doc("Number of quantile bins, or ascending edges.")]


class LogParams(TypedDict):
    """`op: log`."""

    op: Annotated[Literal["log"], Doc("Transform kind.")]
    columns: Annotated[list[str], Doc("Columns transformed.")]
    offset: Annotated[float, Doc("Added before the logarithm so that zeros stay finite.")]


class ImputeParams(TypedDict):
    """`op: impute`."""

    op: Annotated[Literal["impute"], Doc("Transform kind.")]
    columns: Annotated[list[str], Doc("Columns transformed.")]
    strategy: Annotated[
        Literal["mean", "median", "most_frequent", "constant"], Doc("Fill strategy.")
    ]
    fill_value: Annotated[str | float | None, Doc("Value for `strategy: constant`.")]


class PseudonymiseParams(TypedDict):
    """`op: pseudonymise`."""

    op: Annotated[Literal["pseudonymise"], Doc("Transform kind.")]
    columns: Annotated[list[str], Doc("Columns transformed.")]
    key: Annotated[str, Doc("Secret reference of the HMAC-SHA256 key (never the key).")]
    buckets: Annotated[int, Doc("Hash buckets the values fall into.")]


class CustomTransformParams(TypedDict):
    """`op: custom`."""

    op: Annotated[Literal["custom"], Doc("Transform kind.")]
    columns: Annotated[list[str], Doc("Columns transformed.")]
    function: Annotated[str, Doc("`module:function` taking and returning a DataFrame.")]


TransformParams = (
    ScaleParams
    | OneHotParams
    | BucketizeParams
    | LogParams
    | ImputeParams
    | PseudonymiseParams
    | CustomTransformParams
)


class SelectionParams(TypedDict):
    """Which columns become features (`features.selection`)."""

    include: Annotated[list[str] | None, Doc("Only these columns (None: every column).")]
    exclude: Annotated[list[str], Doc("Columns never used as features.")]
    method: Annotated[Literal["none", "variance", "k_best"], Doc("Automatic selection.")]
    k: Annotated[int | None, Doc("Features kept by `k_best`.")]


class FeaturesParams(TypedDict):
    """`features`: fit the feature transform on the train part."""

    target: Annotated[str, Doc("The label column.", spec="features.target")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]
    transforms: Annotated[list[TransformParams], Doc("Transforms in order, by `op`.")]
    derived: Annotated[list[DerivedParams], Doc("Derived feature columns (not the target).")]
    selection: Annotated[SelectionParams, Doc("Feature selection.")]
    dtypes: Annotated[dict[str, DType], Doc("Contract column -> dtype.")]
    pii: Annotated[list[str], Doc("Contract columns marked PII, sorted.")]
    engine: NotRequired[
        Annotated[Engine, Doc("DataFrame engine; present when it is spark.", spec="data.engine")]
    ]
    spark: NotRequired[
        Annotated[SparkParams, Doc("Spark settings; present when the engine is spark.")]
    ]


# -- training and tuning ---------------------------------------------------------------------------


class ModelParams(TypedDict):
    """The estimator (`training.model`)."""

    name: Annotated[str, Doc("scikit-learn class (or dotted path), or a Lightning module.")]
    params: Annotated[dict[str, Any], Doc("Constructor arguments, passed as given.")]


class DistributedParams(TypedDict):
    """Distributed training (`training.distributed`)."""

    strategy: Annotated[Literal["none", "ddp", "fsdp", "deepspeed"], Doc("Strategy.")]
    devices: Annotated[int | Literal["auto"], Doc("Devices per node.")]


class EarlyStoppingParams(TypedDict):
    """Stop when validation loss stops improving (`training.lightning.early_stopping`)."""

    patience: Annotated[int, Doc("Epochs without improvement before stopping.")]
    min_delta: Annotated[float, Doc("Smallest change that counts as an improvement.")]


class LightningParams(TypedDict):
    """Lightning trainer options (`training.lightning`)."""

    max_epochs: Annotated[int, Doc("Most epochs trained.")]
    batch_size: Annotated[int, Doc("Rows per batch.")]
    learning_rate: Annotated[float, Doc("Optimiser learning rate.")]
    precision: Annotated[
        Literal["32-true", "16-mixed", "bf16-mixed", "64-true"], Doc("Numeric precision.")
    ]
    accelerator: Annotated[Literal["auto", "cpu", "gpu"], Doc("Device kind.")]
    early_stopping: Annotated[EarlyStoppingParams | None, Doc("None: train all epochs.")]
    module: Annotated[
        str | None, Doc("User `LightningModule` `module:Class` (None: the built-in model).")
    ]


class BoostParams(TypedDict):
    """XGBoost / LightGBM options (`training.boost`)."""

    early_stopping: Annotated[
        EarlyStoppingParams | None, Doc("Rounds without improvement on validation (None: off).")
    ]


class KerasParams(TypedDict):
    """Keras 3 options (`training.keras`)."""

    builder: Annotated[str | None, Doc("`module:build_model` (None: the built-in MLP).")]
    backend: Annotated[Literal["torch", "tensorflow", "jax"], Doc("KERAS_BACKEND.")]
    epochs: Annotated[int, Doc("Most epochs trained.")]
    batch_size: Annotated[int, Doc("Rows per batch.")]
    learning_rate: Annotated[float, Doc("Adam learning rate of the built-in compile.")]
    early_stopping: Annotated[EarlyStoppingParams | None, Doc("None: train all epochs.")]


class TrainParams(TypedDict):
    """`train`: fit the model on the transformed train part."""

    framework: Annotated[Framework, Doc("Training framework.", spec="training.framework")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]
    target: Annotated[str, Doc("The label column.", spec="features.target")]
    model: Annotated[ModelParams | None, Doc("Estimator; None with `framework: custom`.")]
    entry_point: Annotated[
        str | None, Doc("`module:function` for `framework: custom`.", spec="training.entry_point")
    ]
    lightning: Annotated[LightningParams, Doc("Lightning options (read with `lightning`).")]
    boost: Annotated[BoostParams, Doc("XGBoost / LightGBM options.")]
    keras: Annotated[KerasParams, Doc("Keras options.")]
    distributed: Annotated[DistributedParams, Doc("Distributed training.")]
    seed: Annotated[int, Doc("Seed of every random draw in training.", spec="training.seed")]
    max_time: Annotated[
        float | None, Doc("Wall-clock cap in seconds (None: none).", spec="training.max_time")
    ]
    sample: NotRequired[
        Annotated[int, Doc("Train rows read at most; present when set.", spec="training.sample")]
    ]
    spark: NotRequired[
        Annotated[SparkParams, Doc("Spark settings; present when the engine is spark.")]
    ]


class FloatParamParams(TypedDict):
    """A float search range (`type: float`)."""

    type: Annotated[Literal["float"], Doc("Parameter kind.")]
    low: Annotated[float, Doc("Lower bound.")]
    high: Annotated[float, Doc("Upper bound.")]
    log: Annotated[bool, Doc("Sample on a log scale.")]


class IntParamParams(TypedDict):
    """An integer search range (`type: int`)."""

    type: Annotated[Literal["int"], Doc("Parameter kind.")]
    low: Annotated[int, Doc("Lower bound.")]
    high: Annotated[int, Doc("Upper bound.")]
    step: Annotated[int, Doc("Step between values.")]
    log: Annotated[bool, Doc("Sample on a log scale.")]


class CategoricalParamParams(TypedDict):
    """A choice among values (`type: categorical`)."""

    type: Annotated[Literal["categorical"], Doc("Parameter kind.")]
    choices: Annotated[list[Scalar | None], Doc("The values to choose from.")]


SearchParamParams = FloatParamParams | IntParamParams | CategoricalParamParams


class ObjectiveParams(TypedDict):
    """What tuning optimises (`tuning.objective`)."""

    metric: Annotated[str, Doc("Metric scored by cross-validation.")]
    direction: Annotated[
        Literal["maximize", "minimize"],
        Doc("Optimisation direction (unset in the spec: the metric's own)."),
    ]


class TuneParams(TypedDict):
    """`tune`: hyperparameter search by cross-validation on the train part."""

    engine: Annotated[Literal["optuna"], Doc("Tuning engine.", spec="tuning.engine")]
    objective: Annotated[ObjectiveParams, Doc("Metric and direction optimised.")]
    search_space: Annotated[dict[str, SearchParamParams], Doc("Parameter -> range, by `type`.")]
    trials: Annotated[
        int, Doc("Trials to run (a resumed study counts its own).", spec="tuning.trials")
    ]
    timeout: Annotated[float | None, Doc("Seconds for the whole search.", spec="tuning.timeout")]
    parallelism: Annotated[int, Doc("Trials run at once.", spec="tuning.parallelism")]
    pruner: Annotated[
        Literal["none", "median", "hyperband", "successive_halving"],
        Doc("Trial pruner.", spec="tuning.pruner"),
    ]
    sampler: Annotated[
        Literal["tpe", "random", "cmaes"], Doc("Trial sampler.", spec="tuning.sampler")
    ]
    cv_folds: Annotated[int, Doc("Cross-validation folds.", spec="tuning.cv_folds")]
    storage: Annotated[
        str | None, Doc("Shared RDB URL of the study (None: local).", spec="tuning.storage")
    ]
    framework: Annotated[Framework, Doc("Training framework.", spec="training.framework")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]
    target: Annotated[str, Doc("The label column.", spec="features.target")]
    model: Annotated[ModelParams | None, Doc("Estimator; its params are the fixed ones.")]
    seed: Annotated[int, Doc("Seed of the sampler and folds.", spec="training.seed")]
    metric_direction: Annotated[Direction, Doc("Which way the objective metric is better.")]
    lightning: Annotated[LightningParams, Doc("Lightning options each trial trains with.")]
    boost: Annotated[BoostParams, Doc("XGBoost / LightGBM options of each trial.")]
    keras: Annotated[KerasParams, Doc("Keras options of each trial.")]
    distributed: Annotated[DistributedParams, Doc("Distributed training of each trial.")]
    max_time: Annotated[
        float | None, Doc("Wall-clock cap of each trial's fit.", spec="training.max_time")
    ]
    sample: NotRequired[
        Annotated[int, Doc("Train rows read at most; present when set.", spec="training.sample")]
    ]


# -- evaluation and governance ---------------------------------------------------------------------


class RobustnessParams(TypedDict):
    """A perturbation check (`evaluation.robustness[i]`)."""

    kind: Annotated[Literal["noise", "missing", "shift"], Doc("Perturbation.")]
    features: Annotated[list[str], Doc("Columns perturbed (empty: every numeric feature).")]
    magnitude: Annotated[float, Doc("Size of the perturbation.")]
    max_drop: Annotated[float, Doc("Largest tolerated drop of the first metric.")]


class EvaluateParams(TypedDict):
    """`evaluate`: score the candidate model on the test part."""

    metrics: Annotated[list[str], Doc("Metrics computed, in spec order.")]
    directions: Annotated[dict[str, Direction], Doc("Metric -> which way is better.")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]
    target: Annotated[str, Doc("The label column.", spec="features.target")]
    robustness: Annotated[list[RobustnessParams], Doc("Perturbation checks measured.")]


class FairnessParams(TypedDict):
    """`fairness`: group metrics of the trained model, and optional mitigation."""

    sensitive_attributes: Annotated[list[str], Doc("Columns defining the groups.")]
    metric: Annotated[
        Literal[
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "equalized_odds_difference",
            "equalized_odds_ratio",
        ],
        Doc("Fairness metric."),
    ]
    threshold: Annotated[float, Doc("Ceiling of a difference, floor of a ratio.")]
    mitigation: Annotated[
        Literal["none", "threshold_optimizer", "exponentiated_gradient"],
        Doc("Mitigation; anything but `none` makes the mitigated model the candidate."),
    ]
    target: Annotated[str, Doc("The label column.", spec="features.target")]


class ExplainParams(TypedDict):
    """`explain`: feature importances of the candidate model."""

    method: Annotated[Literal["permutation", "shap"], Doc("Explanation method.")]
    top_k: Annotated[int, Doc("Features listed.")]
    target: Annotated[str, Doc("The label column.", spec="features.target")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]
    exclude: Annotated[
        list[str], Doc("Columns not ranked: kept out of the features, or PII; sorted.")
    ]


class GateEntryParams(TypedDict):
    """A gate (`evaluation.gates[i]`) with its metric's direction."""

    metric: Annotated[str, Doc("Metric compared.")]
    op: Annotated[Comparison, Doc("Comparison that must hold.")]
    threshold: Annotated[float, Doc("Value compared with.")]
    name: Annotated[str | None, Doc("Display name (None: `metric op threshold`).")]
    direction: Annotated[Direction, Doc("Which way the metric is better.")]


class BootstrapParams(TypedDict):
    """Paired bootstrap of the champion comparison (`evaluation.champion.bootstrap`)."""

    samples: Annotated[int, Doc("Resamples of the test rows.")]
    confidence: Annotated[float, Doc("Two-sided confidence of the interval.")]
    seed: Annotated[int, Doc("Resampling seed.")]


class ChampionParams(TypedDict):
    """Champion comparison (`evaluation.champion`) with its metric's direction."""

    compare: Annotated[bool, Doc("Whether to compare at all.")]
    metric: Annotated[str, Doc("Metric compared.")]
    min_improvement: Annotated[float, Doc("Margin a challenger must beat the champion by.")]
    same_holdout: Annotated[bool, Doc("Rescore the champion on this run's test split.")]
    bootstrap: Annotated[BootstrapParams | None, Doc("Bootstrap interval (None: none).")]
    direction: Annotated[Direction, Doc("Which way the metric is better.")]


class FairnessGateParams(TypedDict):
    """The fairness gate (`governance.fairness`) with its metric's direction."""

    sensitive_attributes: Annotated[list[str], Doc("Columns defining the groups.")]
    metric: Annotated[str, Doc("Fairness metric.")]
    threshold: Annotated[float, Doc("Ceiling of a difference, floor of a ratio.")]
    mitigation: Annotated[str, Doc("Mitigation applied before the gate.")]
    direction: Annotated[Direction, Doc("Which way the metric is better.")]


class GateParams(TypedDict):
    """`gate`: the verdict on the candidate model."""

    gates: Annotated[list[GateEntryParams], Doc("Metric gates.")]
    champion: Annotated[ChampionParams | None, Doc("Champion comparison (None: none).")]
    fairness: Annotated[FairnessGateParams | None, Doc("Fairness gate (None: none).")]
    robustness: Annotated[list[RobustnessParams], Doc("Robustness limits checked.")]
    model_name: Annotated[str, Doc("Registered model name.", spec="name")]
    target: Annotated[str, Doc("The label column.", spec="features.target")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]


class CardParams(TypedDict):
    """Model card text (`governance.model_card`)."""

    intended_use: Annotated[str, Doc("What the model is for.")]
    out_of_scope: Annotated[str, Doc("Uses it is not for.")]
    limitations: Annotated[str, Doc("Known limitations.")]
    ethical_considerations: Annotated[str, Doc("Ethical considerations.")]
    contact: Annotated[str, Doc("Who to contact.")]


class ModelCardParams(TypedDict):
    """`model_card`: the Markdown card of the candidate model."""

    model_name: Annotated[str, Doc("Registered model name.", spec="name")]
    description: Annotated[str, Doc("Spec description.", spec="description")]
    owners: Annotated[list[str], Doc("Governance owners, else the spec owners.")]
    approvers: Annotated[list[str], Doc("Approvers.", spec="governance.approvers")]
    risk: Annotated[Literal["low", "medium", "high"], Doc("Risk.", spec="governance.risk")]
    compliance: Annotated[list[str], Doc("Compliance regimes.", spec="governance.compliance")]
    card: Annotated[CardParams, Doc("Card text.")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]


class PromotionParams(TypedDict):
    """Promotion policy (`feedback.promotion`)."""

    policy: Annotated[Literal["auto", "manual"], Doc("`auto` promotes a passing challenger.")]
    min_improvement: Annotated[float, Doc("Margin over the champion needed to promote.")]


class RegisterParams(TypedDict):
    """`register`: register the candidate model (only when the gate passed)."""

    model_name: Annotated[str, Doc("Registered model name.", spec="name")]
    promotion: Annotated[PromotionParams, Doc("Promotion policy.")]
    approvers: Annotated[list[str], Doc("Approvers.", spec="governance.approvers")]
    contract: Annotated[ContractParams, Doc("Data contract (the registry's input schema).")]
    target: Annotated[str, Doc("The label column.", spec="features.target")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]
    model: Annotated[ModelParams | None, Doc("Estimator and its fixed params.")]
    tuning_storage: Annotated[
        str | None, Doc("The study's shared storage (None: local or no tuning).")
    ]
    promote_by: Annotated[
        Literal["register", "rollout"],
        Doc(
            "Who moves `champion` once one exists: register (auto policy), or the canary or "
            "blue-green rollout that judges the new version live."
        ),
    ]


# -- operations ------------------------------------------------------------------------------------


class EncryptionParams(TypedDict):
    """Encryption (`security.encryption`)."""

    at_rest: Annotated[bool, Doc("Encrypt stored data and artifacts.")]
    in_transit: Annotated[bool, Doc("TLS for serving.")]
    kms_key: Annotated[str | None, Doc("Existing customer-managed key (None: a new one).")]


class RetentionParams(TypedDict):
    """Retention in seconds (`governance.retention`); None keeps forever."""

    data: Annotated[float | None, Doc("Datasets.")]
    models: Annotated[float | None, Doc("Model artifacts.")]
    logs: Annotated[float | None, Doc("Logs.")]


class StorageParams(TypedDict):
    """`storage`: the data and artifact buckets."""

    cloud: Annotated[Cloud, Doc("Cloud (`onprem` without a deployment).")]
    region: Annotated[str | None, Doc("Region (None without a deployment).")]
    encryption: Annotated[EncryptionParams, Doc("Encryption.")]
    retention: Annotated[RetentionParams, Doc("Retention.")]
    versioning: Annotated[VersioningParams, Doc("Dataset versioning.")]


class AccessRoleParams(TypedDict):
    """An access role (`security.access[i]`)."""

    role: Annotated[str, Doc("Role name.")]
    members: Annotated[list[str], Doc("Members (users, groups).")]
    permissions: Annotated[
        list[Literal["read_data", "train", "deploy", "approve", "admin", "view_metrics"]],
        Doc("Permissions granted."),
    ]


class IdentityParams(TypedDict):
    """`identity`: one workload identity per role."""

    cloud: Annotated[Cloud, Doc("Cloud (`onprem` without a deployment).")]
    roles: Annotated[list[str], Doc("Workload roles: pipeline, training, serving, monitoring.")]
    access: Annotated[list[AccessRoleParams], Doc("People's access roles.")]


class BudgetsParams(TypedDict):
    """Spending caps (`budgets`)."""

    training_usd: Annotated[float | None, Doc("Cap on one training run.")]
    tuning_usd: Annotated[float | None, Doc("Cap on one tuning search.")]
    serving_usd_per_month: Annotated[float | None, Doc("Monthly cap on serving.")]
    total_usd_per_month: Annotated[float | None, Doc("Monthly cap on everything.")]
    gpu_hours: Annotated[float | None, Doc("Cap on GPU hours.")]
    idle_shutdown: Annotated[float | None, Doc("Seconds idle before shutdown.")]
    alert_thresholds: Annotated[list[int], Doc("Percentages of a cap at which alerts fire.")]
    enforce: Annotated[Literal["error", "warn"], Doc("What exceeding a cap does.")]


class BudgetParams(BudgetsParams):
    """`budget`: spending caps and their alerts (present when any cap is set)."""

    cloud: Annotated[Cloud, Doc("Cloud the costs are priced on.")]


class RollbackParams(TypedDict):
    """A rollback condition (`deployment.strategy.rollback[i]`)."""

    metric: Annotated[
        Literal["error_rate", "latency_p99_ms", "latency_p50_ms", "drift_score"],
        Doc("Serving metric watched."),
    ]
    op: Annotated[Literal[">", ">=", "<", "<="], Doc("Comparison that triggers rollback.")]
    threshold: Annotated[float, Doc("Value compared with.")]


class CanaryParams(TypedDict):
    """`kind: canary`."""

    kind: Annotated[Literal["canary"], Doc("Rollout strategy.")]
    steps: Annotated[list[int], Doc("Traffic percentages, ending at 100.")]
    bake_time: Annotated[float, Doc("Seconds each step runs.")]
    rollback: Annotated[list[RollbackParams], Doc("Rollback conditions.")]


class BlueGreenParams(TypedDict):
    """`kind: blue_green`."""

    kind: Annotated[Literal["blue_green"], Doc("Rollout strategy.")]
    bake_time: Annotated[float, Doc("Seconds before the switch.")]
    switch: Annotated[Literal["auto", "manual"], Doc("Who switches traffic.")]
    rollback: Annotated[list[RollbackParams], Doc("Rollback conditions.")]


class VariantParams(TypedDict):
    """An A/B variant."""

    name: Annotated[str, Doc("Variant name.")]
    weight: Annotated[int, Doc("Traffic percentage.")]
    model_alias: Annotated[str, Doc("Registry alias served.")]


class ABParams(TypedDict):
    """`kind: ab`."""

    kind: Annotated[Literal["ab"], Doc("Rollout strategy.")]
    variants: Annotated[list[VariantParams], Doc("Variants; weights sum to 100.")]
    metric: Annotated[str | None, Doc("Business metric compared.")]
    duration: Annotated[float | None, Doc("Seconds the test runs.")]


class ShadowParams(TypedDict):
    """`kind: shadow`."""

    kind: Annotated[Literal["shadow"], Doc("Rollout strategy.")]
    mirror_percent: Annotated[int, Doc("Share of requests mirrored.")]
    duration: Annotated[float | None, Doc("Seconds the shadow runs.")]


class RecreateParams(TypedDict):
    """`kind: recreate`."""

    kind: Annotated[Literal["recreate"], Doc("Rollout strategy.")]


StrategyParams = CanaryParams | BlueGreenParams | ABParams | ShadowParams | RecreateParams


class AutoscalingParams(TypedDict):
    """Autoscaling (`deployment.autoscaling`)."""

    min_replicas: Annotated[int, Doc("Fewest replicas.")]
    max_replicas: Annotated[int, Doc("Most replicas.")]
    target_utilization: Annotated[int, Doc("Target CPU utilisation (KServe: concurrency).")]
    scale_to_zero: Annotated[bool, Doc("Allow zero replicas.")]


class GpuParams(TypedDict):
    """GPUs (`resources.gpu`)."""

    count: Annotated[int, Doc("GPUs per node.")]
    type: Annotated[str | None, Doc("Accelerator type.")]


class ResourcesParams(TypedDict):
    """Resources as written in the spec (`deployment.resources`)."""

    cpu: Annotated[str | None, Doc("CPU quantity.")]
    memory: Annotated[str | None, Doc("Memory quantity.")]
    gpu: Annotated[GpuParams | None, Doc("GPUs (None: none).")]
    nodes: Annotated[int, Doc("Nodes.")]


class BatchParams(TypedDict):
    """Batch scoring (`deployment.batch`)."""

    schedule: Annotated[str, Doc("Cron schedule of the recurring scoring run.")]
    input: Annotated[str, Doc("What to score: CSV, Parquet or a folder of Parquet files.")]
    output: Annotated[str, Doc("Folder the predictions, summary and drift report go to.")]
    alias: Annotated[str, Doc("Registered-model alias that scores the batch.")]
    id_column: Annotated[str | None, Doc("Input column carried as the row id (None: row number).")]
    chunk_rows: Annotated[int, Doc("Rows read, checked and scored at a time.")]


class ParityParams(TypedDict):
    """How close the exported model scores to the original (`deployment.edge.parity`)."""

    proba_atol: Annotated[float, Doc("Classification: largest |difference| of a probability.")]
    atol: Annotated[float, Doc("Regression: absolute part of the per-row bound.")]
    rtol: Annotated[float, Doc("Regression: relative part of the per-row bound.")]
    quantized_proba_atol: Annotated[float, Doc("`proba_atol` of the quantised graph.")]
    quantized_rtol: Annotated[float, Doc("`rtol` (and `atol`) of the quantised graph.")]
    quantized_label_agreement: Annotated[
        float, Doc("Share of rows whose label the quantised graph keeps.")
    ]


class EdgeParams(TypedDict):
    """Edge export (`deployment.edge`)."""

    format: Annotated[Literal["onnx"], Doc("Package format.")]
    quantize: Annotated[
        Literal["none", "dynamic"], Doc("`dynamic`: also ship an int8 quantised graph.")
    ]
    opset: Annotated[int, Doc("ONNX opset of the exported graph.")]
    parity: Annotated[ParityParams, Doc("Parity bounds against the original model.")]


class NetworkParams(TypedDict):
    """Network policy (`security.network`)."""

    ingress: Annotated[list[str], Doc("CIDR blocks or namespaces allowed to call the model.")]
    egress: Annotated[list[str], Doc("Destinations the model may reach.")]
    allow_public: Annotated[bool, Doc("Expose the endpoint publicly.")]


class ServingParams(TypedDict):
    """How `mlc serve` serves (`deployment.serving`)."""

    admin_token: Annotated[str | None, Doc("Admin token's secret reference (None: no admin).")]
    log_sample: Annotated[float, Doc("Share of requests in the prediction log.")]
    log_segment_rows: Annotated[int, Doc("Rows that close a log segment.")]
    log_segment_seconds: Annotated[float, Doc("Age that closes a log segment.")]
    reload_interval: Annotated[float, Doc("Seconds between alias polls (0: never).")]
    min_requests: Annotated[int, Doc("Candidate requests a bake needs to be judged.")]
    max_batch_size: Annotated[int, Doc("Micro-batch size in rows (1: off).")]
    max_latency_ms: Annotated[float, Doc("Longest wait for a micro-batch to fill.")]


class DeploymentParams(TypedDict):
    """`deploy`, `batch_predict` and `export`: the deployment section plus security settings."""

    mode: Annotated[Literal["online", "batch", "edge"], Doc("Serving mode; selects the kind.")]
    platform: Annotated[
        Literal["kserve", "k8s", "sagemaker", "vertex", "azureml", "local"],
        Doc("Serving platform.", spec="deployment.platform"),
    ]
    cloud: Annotated[Cloud, Doc("Cloud.", spec="deployment.cloud")]
    region: Annotated[str, Doc("Region.", spec="deployment.region")]
    strategy: Annotated[StrategyParams, Doc("Rollout strategy, by `kind`.")]
    autoscaling: Annotated[AutoscalingParams, Doc("Autoscaling.")]
    resources: Annotated[ResourcesParams, Doc("Serving resources as written in the spec.")]
    batch: Annotated[BatchParams | None, Doc("Batch settings (mode batch).")]
    edge: Annotated[EdgeParams | None, Doc("Edge settings (mode edge).")]
    serving: Annotated[ServingParams, Doc("Serving runtime settings.")]
    model_name: Annotated[str, Doc("Registered model name.", spec="name")]
    secrets: Annotated[dict[str, str], Doc("Environment variable -> secret reference.")]
    network: Annotated[NetworkParams, Doc("Network policy.")]
    encryption: Annotated[EncryptionParams, Doc("Encryption.")]
    access: Annotated[list[AccessRoleParams], Doc("People's access roles.")]


class BatchPredictParams(DeploymentParams):
    """`batch_predict`: the deployment settings plus what scoring a file needs."""

    contract: Annotated[ContractParams, Doc("The data contract each input batch is checked with.")]
    target: Annotated[str, Doc("The label column (ignored when the input carries it).")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]
    engine: Annotated[Literal["pandas", "spark"], Doc("Engine reading and scoring the input.")]
    spark: Annotated[SparkParams | None, Doc("Spark settings (None with the pandas engine).")]
    drift: Annotated[
        DriftParams | None, Doc("Drift of the batch against the train part (None: PSI at 0.2).")
    ]
    features: Annotated[list[str], Doc("Raw input columns the model reads, in order.")]


class ExportParams(DeploymentParams):
    """`export`: the deployment settings plus the columns the exported graph takes."""

    contract: Annotated[ContractParams, Doc("The data contract: the graph's input types.")]
    target: Annotated[str, Doc("The label column.")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]
    features: Annotated[list[str], Doc("Raw input columns, one graph input each, in order.")]


class SlosParams(TypedDict):
    """Service-level objectives (`monitoring.slos`)."""

    latency_p99_ms: Annotated[float | None, Doc("p99 latency ceiling in milliseconds.")]
    error_rate: Annotated[float | None, Doc("Largest tolerated share of failed requests.")]
    window: Annotated[float, Doc("Seconds the SLOs are evaluated over.")]


class DriftParams(TypedDict):
    """Drift detection (`monitoring.drift`)."""

    method: Annotated[
        Literal["psi", "ks", "chi2", "wasserstein", "jensen_shannon"], Doc("Drift statistic.")
    ]
    numeric: Annotated[
        Literal["psi", "ks", "chi2", "wasserstein", "jensen_shannon"],
        Doc("Test for numeric features (the builder fills in `method`)."),
    ]
    categorical: Annotated[
        Literal["psi", "chi2", "jensen_shannon"],
        Doc("Test for categorical features (the builder fills in `method` or chi2)."),
    ]
    threshold: Annotated[float, Doc("Score above which a feature has drifted.")]
    features: Annotated[list[str], Doc("Columns watched (the builder fills in every feature).")]
    schedule: Annotated[str, Doc("Cron schedule of the check.")]


class PerformanceParams(TypedDict):
    """Delayed-label performance (`monitoring.performance`) with its metric's direction."""

    metric: Annotated[str, Doc("Metric watched.")]
    floor: Annotated[float, Doc("Worst acceptable value.")]
    label_delay: Annotated[float, Doc("Seconds labels take to arrive.")]
    schedule: Annotated[str, Doc("Cron schedule of the check.")]
    direction: Annotated[Direction, Doc("Which way the metric is better.")]


class DashboardsParams(TypedDict):
    """Dashboards (`monitoring.dashboards`)."""

    grafana: Annotated[bool, Doc("Emit a Grafana dashboard.")]
    folder: Annotated[str, Doc("Grafana folder.")]


class MonitorParams(TypedDict):
    """`monitor`: drift and performance of the served model against the train part."""

    slos: Annotated[SlosParams, Doc("SLOs.")]
    drift: Annotated[DriftParams | None, Doc("Drift detection (None: none).")]
    window: Annotated[float, Doc("Seconds of the prediction log read as current data.")]
    min_rows: Annotated[int, Doc("Fewest current rows to judge drift.")]
    performance: Annotated[PerformanceParams | None, Doc("Performance check (None: none).")]
    dashboards: Annotated[DashboardsParams, Doc("Dashboards.")]
    model_name: Annotated[str, Doc("Registered model name.", spec="name")]
    rollback: Annotated[list[RollbackParams], Doc("Rollback conditions of the rollout.")]
    budgets: Annotated[BudgetsParams, Doc("Spending caps (for cost alerts).")]
    target: Annotated[str, Doc("The label column.", spec="features.target")]
    task: Annotated[Task, Doc("Learning task.", spec="training.task")]
    metrics: Annotated[list[str], Doc("Evaluation metrics, also scored on labelled data.")]


class AlertRouteParams(TypedDict):
    """An alert route (`monitoring.alerts[i]`)."""

    name: Annotated[str, Doc("Route name.")]
    channel: Annotated[
        Literal["slack", "pagerduty", "email", "webhook", "opsgenie"], Doc("Channel.")
    ]
    target: Annotated[str, Doc("Address, or a secret reference.")]
    severity: Annotated[Literal["info", "warning", "critical"], Doc("Least severity routed.")]
    match: Annotated[list[str], Doc("Alert names routed (empty: all).")]


class AlertsParams(TypedDict):
    """`alerts`: where monitoring alerts go."""

    routes: Annotated[list[AlertRouteParams], Doc("Alert routes.")]
    model_name: Annotated[str, Doc("Registered model name.", spec="name")]


class DriftTriggerParams(TypedDict):
    """`kind: drift`."""

    kind: Annotated[Literal["drift"], Doc("Trigger kind.")]
    threshold: Annotated[float | None, Doc("Drift score (None: the monitor's threshold).")]


class PerformanceTriggerParams(TypedDict):
    """`kind: performance_drop`, with its metric's direction."""

    kind: Annotated[Literal["performance_drop"], Doc("Trigger kind.")]
    metric: Annotated[str, Doc("Metric watched.")]
    drop: Annotated[float, Doc("Drop from the value at promotion that fires.")]
    direction: Annotated[Direction, Doc("Which way the metric is better.")]


class ScheduleTriggerParams(TypedDict):
    """`kind: schedule`."""

    kind: Annotated[Literal["schedule"], Doc("Trigger kind.")]
    cron: Annotated[str, Doc("Cron schedule.")]


class DataVolumeTriggerParams(TypedDict):
    """`kind: data_volume`."""

    kind: Annotated[Literal["data_volume"], Doc("Trigger kind.")]
    rows: Annotated[int, Doc("New labelled rows since the last training.")]


TriggerParams = (
    DriftTriggerParams | PerformanceTriggerParams | ScheduleTriggerParams | DataVolumeTriggerParams
)


class ActiveLearningParams(TypedDict):
    """Active learning (`feedback.active_learning`)."""

    strategy: Annotated[
        Literal["uncertainty", "margin", "entropy", "random"], Doc("How rows are picked.")
    ]
    batch_size: Annotated[int, Doc("Rows picked for labelling.")]


class RetrainTriggerParams(TypedDict):
    """`retrain_trigger`: whether monitoring signals call for retraining."""

    triggers: Annotated[list[TriggerParams], Doc("Triggers, by `kind`.")]
    active_learning: Annotated[ActiveLearningParams | None, Doc("Active learning (None: off).")]
    promotion: Annotated[PromotionParams, Doc("Promotion policy.")]
    model_name: Annotated[str, Doc("Registered model name.", spec="name")]
    target: Annotated[str, Doc("The label column.", spec="features.target")]


PARAMS_BY_KIND: dict[StepKind, type] = {
    StepKind.INGEST: IngestParams,
    StepKind.VALIDATE: ValidateParams,
    StepKind.SPLIT: SplitParams,
    StepKind.FEATURES: FeaturesParams,
    StepKind.TUNE: TuneParams,
    StepKind.TRAIN: TrainParams,
    StepKind.EVALUATE: EvaluateParams,
    StepKind.FAIRNESS: FairnessParams,
    StepKind.EXPLAIN: ExplainParams,
    StepKind.GATE: GateParams,
    StepKind.REGISTER: RegisterParams,
    StepKind.MODEL_CARD: ModelCardParams,
    StepKind.DEPLOY: DeploymentParams,
    StepKind.BATCH_PREDICT: BatchPredictParams,
    StepKind.EXPORT: ExportParams,
    StepKind.MONITOR: MonitorParams,
    StepKind.ALERTS: AlertsParams,
    StepKind.RETRAIN_TRIGGER: RetrainTriggerParams,
    StepKind.STORAGE: StorageParams,
    StepKind.IDENTITY: IdentityParams,
    StepKind.BUDGET: BudgetParams,
}
"""The params type of each step kind."""

SPEC_MODELS: dict[type, str] = {
    CsvSourceParams: "mlc.specs.data:CsvSource",
    ParquetSourceParams: "mlc.specs.data:ParquetSource",
    SqlSourceParams: "mlc.specs.data:SqlSource",
    SparkTableSourceParams: "mlc.specs.data:SparkTableSource",
    VersioningParams: "mlc.specs.data:Versioning",
    SparkParams: "mlc.specs.data:SparkSettings",
    ColumnParams: "mlc.specs.data:Column",
    ContractParams: "mlc.specs.data:Contract",
    SplitMinimumParams: "mlc.specs.data:SplitMinimum",
    SplitParams: "mlc.specs.data:Split",
    DerivedParams: "mlc.specs.features:Derived",
    ScaleParams: "mlc.specs.features:Scale",
    OneHotParams: "mlc.specs.features:OneHot",
    BucketizeParams: "mlc.specs.features:Bucketize",
    LogParams: "mlc.specs.features:Log",
    ImputeParams: "mlc.specs.features:Impute",
    PseudonymiseParams: "mlc.specs.features:Pseudonymise",
    CustomTransformParams: "mlc.specs.features:Custom",
    SelectionParams: "mlc.specs.features:Selection",
    ModelParams: "mlc.specs.training:Model",
    DistributedParams: "mlc.specs.training:Distributed",
    EarlyStoppingParams: "mlc.specs.training:EarlyStopping",
    LightningParams: "mlc.specs.training:LightningOptions",
    BoostParams: "mlc.specs.training:BoostOptions",
    KerasParams: "mlc.specs.training:KerasOptions",
    FloatParamParams: "mlc.specs.tuning:FloatParam",
    IntParamParams: "mlc.specs.tuning:IntParam",
    CategoricalParamParams: "mlc.specs.tuning:CategoricalParam",
    ObjectiveParams: "mlc.specs.tuning:Objective",
    TuneParams: "mlc.specs.tuning:Tuning",
    RobustnessParams: "mlc.specs.evaluation:Robustness",
    GateEntryParams: "mlc.specs.evaluation:Gate",
    ChampionParams: "mlc.specs.evaluation:Champion",
    BootstrapParams: "mlc.specs.evaluation:Bootstrap",
    FairnessParams: "mlc.specs.governance:Fairness",
    FairnessGateParams: "mlc.specs.governance:Fairness",
    ExplainParams: "mlc.specs.governance:Explainability",
    CardParams: "mlc.specs.governance:ModelCard",
    RetentionParams: "mlc.specs.governance:Retention",
    PromotionParams: "mlc.specs.feedback:Promotion",
    EncryptionParams: "mlc.specs.security:Encryption",
    AccessRoleParams: "mlc.specs.security:AccessRole",
    NetworkParams: "mlc.specs.security:Network",
    BudgetsParams: "mlc.specs.budgets:Budgets",
    BudgetParams: "mlc.specs.budgets:Budgets",
    RollbackParams: "mlc.specs.deployment:RollbackCondition",
    CanaryParams: "mlc.specs.deployment:Canary",
    BlueGreenParams: "mlc.specs.deployment:BlueGreen",
    VariantParams: "mlc.specs.deployment:Variant",
    ABParams: "mlc.specs.deployment:AB",
    ShadowParams: "mlc.specs.deployment:Shadow",
    RecreateParams: "mlc.specs.deployment:Recreate",
    AutoscalingParams: "mlc.specs.deployment:Autoscaling",
    GpuParams: "mlc.specs._base:GpuSpec",
    ResourcesParams: "mlc.specs._base:Resources",
    BatchParams: "mlc.specs.deployment:Batch",
    ParityParams: "mlc.specs.deployment:Parity",
    EdgeParams: "mlc.specs.deployment:Edge",
    ServingParams: "mlc.specs.deployment:Serving",
    DeploymentParams: "mlc.specs.deployment:Deployment",
    SlosParams: "mlc.specs.monitoring:Slos",
    DriftParams: "mlc.specs.monitoring:Drift",
    PerformanceParams: "mlc.specs.monitoring:Performance",
    DashboardsParams: "mlc.specs.monitoring:Dashboards",
    AlertRouteParams: "mlc.specs.monitoring:AlertRoute",
    DriftTriggerParams: "mlc.specs.feedback:DriftTrigger",
    PerformanceTriggerParams: "mlc.specs.feedback:PerformanceTrigger",
    ScheduleTriggerParams: "mlc.specs.feedback:ScheduleTrigger",
    DataVolumeTriggerParams: "mlc.specs.feedback:DataVolumeTrigger",
    ActiveLearningParams: "mlc.specs.feedback:ActiveLearning",
}
"""TypedDict -> the spec model (`module:Class`) it copies: keys of the same name take that
field's value, and the reference shows that field's default (the one place defaults live)."""
