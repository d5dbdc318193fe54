"""The SparkSession of a step: `data.spark` from the params, `MLC_SPARK_MASTER` overriding."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from mlc.runtime.context import StepError

DEFAULT_MASTER = "local[1]"
SUBMITTED = "MLC_SPARK_SUBMITTED"
"""Set by `driver.py`: the step runs in a driver that spark-submit started."""
# Small defaults for one machine; `data.spark.conf` overrides any of them.
_DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    # the catalog's warehouse defaults to ./spark-warehouse, i.e. wherever the step was started
    "spark.sql.warehouse.dir": os.path.join(tempfile.gettempdir(), "mlc-spark-warehouse"),
}


def master(settings: Mapping[str, Any] | None) -> str:
    """The master a step uses: the environment's override, else the spec's, else local[1]."""
    override = os.environ.get("MLC_SPARK_MASTER")
    if override:
        return override
    if settings and settings.get("master"):
        return str(settings["master"])
    return DEFAULT_MASTER


def session(settings: Mapping[str, Any] | None, step: str) -> Any:
    """The active SparkSession, or a new one for `settings` (`{"master", "conf"}`).

    Raises:
        StepError: naming the master and Spark's own message when no session can start.
    """
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # mapInPandas workers (batch scoring) must run this interpreter, not the system python3
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise StepError(
            step,
            "the spark engine needs pyspark, which is not installed",
            "pip install 'mlc[spark]'",
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext._jsc is not None:
        # The steps of one run share data.spark: the session an earlier step started is it. A
        # builder on it would warn that static settings no longer apply; the runtime ones are
        # set as the builder would set them.
        for key, value in dict((settings or {}).get("conf") or {}).items():
            if active.conf.isModifiable(key):
                active.conf.set(key, str(value))
        return active
    conf = {**_DEFAULT_CONF, **dict((settings or {}).get("conf") or {})}
    builder = SparkSession.builder.appName(f"mlc-{step}")
    if os.environ.get(SUBMITTED):
        # Under spark-submit (a SparkApplication's driver) the operator set the master and the
        # application's conf: a builder master would override them.
        url = "(spark-submit)"
        conf = {}
    else:
        url = master(settings)
        builder = builder.master(url)
    for key, value in conf.items():
        builder = builder.config(key, str(value))
    try:
        spark = builder.getOrCreate()
        # A standalone master that never answers leaves a session whose context is stopped.
        if spark.sparkContext._jsc is None:
            raise RuntimeError("the Spark context stopped while starting")
    except Exception as exc:  # py4j and JVM start-up errors share no base class
        raise StepError(
            step,
            f"cannot start Spark on master '{url}': {first_line(exc)}",
            "check data.spark.master (or MLC_SPARK_MASTER) and that the cluster is reachable",
        ) from exc
    return spark


def first_line(exc: BaseException) -> str:
    """Spark's message without the JVM stack trace that follows it."""
    text = str(exc).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
