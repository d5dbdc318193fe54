"""The images emitted manifests run: which mlc extras a spec's steps need, and the Dockerfiles
that build them from the spec's project folder (serving and the kfp runtime)."""

from __future__ import annotations

from collections.abc import Sequence

from mlc.compiler.ir import IRGraph, StepKind

SPARK_VERSION = "4.3.0"
"""The pyspark the runtime image pins (constraints.txt), and the Spark its pods run."""
DRIVER_FILE = "local:///opt/mlc/runtime/spark/driver.py"
"""Where the runtime image puts the Spark driver script (a SparkApplication's main file)."""

FRAMEWORK_EXTRAS = {
    "xgboost": "boost",
    "lightgbm": "boost",
    "keras": "keras",
    "lightning": "torch",
}
"""training.framework -> the mlc extra its models need to train and to load."""


def image_extras(ir: IRGraph, base: Sequence[str], *, training: bool) -> list[str]:
    """`base` plus the extras the spec's model needs; with `training`, also what its steps
    need to run (Spark for the spark engine, the serving stack for an ONNX export)."""
    extras = list(base)

    def add(extra: str) -> None:
        if extra not in extras:
            extras.append(extra)

    train = ir.first(StepKind.TRAIN)
    framework = str(train.params.get("framework")) if train is not None else ""
    if framework == "keras" and train is not None:
        backend = (train.params.get("keras") or {}).get("backend", "torch")
        add("tensorflow" if backend == "tensorflow" else "keras")
    elif framework in FRAMEWORK_EXTRAS:
        add(FRAMEWORK_EXTRAS[framework])
    if training:
        if any(s.params.get("engine") == "spark" for s in ir.steps):
            add("spark")
        if ir.first(StepKind.EXPORT) is not None:
            add("serve")
    return extras


_SPARK_LAYERS = r"""RUN apt-get update && apt-get install -y --no-install-recommends \
        openjdk-17-jre-headless tini procps && rm -rf /var/lib/apt/lists/* \
    && ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /opt/java
RUN pip install "$MLC_PACKAGE" \
    && ln -s "$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" \
        /opt/spark \
    && mkdir -p {driver_dir} \
    && cp "$(python -c 'import {driver_module} as d; print(d.__file__)')" {driver}
ENV JAVA_HOME=/opt/java SPARK_HOME=/opt/spark PYSPARK_PYTHON=python
COPY --from=spark /opt/entrypoint.sh /opt/decom.sh /opt/
ENTRYPOINT ["/opt/entrypoint.sh"]"""
"""pyspark with a JVM laid out as Spark's own images are (`JAVA_HOME`, `SPARK_HOME` with `bin/`
and `jars/`, tini), so the operator's driver and executor pods start from Spark's entrypoint."""


def runtime_dockerfile(
    ir: IRGraph, image: str, project_dir: str, base: Sequence[str] = ("ml",)
) -> str:
    """The runtime image's Dockerfile: mlc with `base` and the extras the spec's steps need
    (its training framework, Spark for the spark engine), and the spec's project folder at
    `project_dir`. Pipeline components, TrainJob nodes, batch and loop jobs run in it."""
    from mlc.targets.base import COMPILER_VERSION

    extras = image_extras(ir, base, training=True)
    spark = "spark" in extras
    lines = [
        f"# The runtime image of {ir.name}: its steps"
        + (" (and every Spark driver and executor pod)" if spark else "")
        + " run mlc in it.",
        f"# Build from the spec's project folder (copied to {project_dir}):",
        f"#   docker build -f <this file> -t {image} <project folder>",
        f"# MLC_PACKAGE may name a wheel by URL, or another release than mlc {COMPILER_VERSION}.",
    ]
    if spark:
        # only for the entrypoint the Spark Operator's pods run (`driver`, `executor`)
        lines.append(f"FROM apache/spark:{SPARK_VERSION} AS spark")
    lines += [
        "FROM python:3.11-slim",
        "",
        f'ARG MLC_PACKAGE="mlc[{",".join(extras)}]=={COMPILER_VERSION}"',
        "ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
    ]
    if spark:
        driver = DRIVER_FILE.removeprefix("local://")
        lines.append(
            _SPARK_LAYERS.format(
                driver=driver,
                driver_dir=driver.rsplit("/", 1)[0],
                driver_module="mlc.runtime.spark.driver",
            )
        )
    else:
        lines.append('RUN pip install "$MLC_PACKAGE"')
    lines += [f"COPY . {project_dir}", f"WORKDIR {project_dir}", ""]
    return "\n".join(lines)
