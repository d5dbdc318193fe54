"""The spark engine's data steps: frames stay Spark DataFrames from ingest to the split.

Datasets are Parquet folders written by Spark (`data.parquet/` inside the artifact); the
contract is checked with `pandera.pyspark`; the feature transform is fitted with Spark
aggregates into a plan that a pandas-only transformer (`transform.FittedPlan`) applies at
serving, and that `transform.apply_spark` applies to Spark frames as SQL expressions. Nothing
here imports pyspark at module level, so serving loads a model without it.
"""
