"""What the runtime steps can carry out, as capability names of the IR's step requirements.

Pipeline targets that execute these steps (local, kfp) honour exactly these, plus whatever
their orchestrator adds (resources, retries, parallel tuning, …). Plain data: no imports.
"""

from __future__ import annotations

RUNTIME_FEATURES = frozenset(
    {
        # data: ingest and validate
        "source.csv",
        "source.parquet",
        "source.sql",
        "source.spark_table",
        "engine.spark",
        "contract.stop",
        "contract.quarantine",
        "contract.warn",
        "split.random",
        "split.stratified",
        "split.time",
        "split.hash",
        # features
        "transform.scale",
        "transform.one_hot",
        "transform.bucketize",
        "transform.log",
        "transform.impute",
        "transform.pseudonymise",
        "transform.custom",
        # training and tuning
        "framework.sklearn",
        "framework.lightning",
        "framework.custom",
        "framework.xgboost",
        "framework.lightgbm",
        "framework.keras",
        "framework.spark_ml",
        # DDP runs in spawned workers (`lightning_mlp.launch_plan`); FSDP and DeepSpeed would
        # re-run the step's command in every rank, so no target claims them
        "distributed.ddp",
        "tuning.optuna",
        "tuning.pruner.none",
        "tuning.pruner.median",
        "tuning.pruner.hyperband",
        "tuning.pruner.successive_halving",
        # evaluation and governance
        "evaluation.champion",
        "robustness.noise",
        "robustness.missing",
        "robustness.shift",
        "fairness.none",
        "fairness.threshold_optimizer",
        "fairness.exponentiated_gradient",
        "explain.permutation",
        "explain.shap",
        # operations steps that run in the pipeline
        "mode.batch",
        "mode.edge",
    }
)
