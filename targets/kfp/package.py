"""Emit the kfp target's files: the pipeline package, its recurring runs and a run config."""

from __future__ import annotations

from typing import Any

import yaml

from mlc.compiler.ir import IRGraph
from mlc.targets.kfp import KfpOptions
from mlc.targets.kfp.pipeline import build_pipeline
from mlc.targets.kfp.schedule import recurring_runs

try:  # the C dumper is several times faster on large pipelines and writes the same YAML
    _Dumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Dumper = yaml.SafeDumper


def dump_yaml(doc: Any) -> str:
    text: str = yaml.dump(
        doc, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=80
    )
    return text


def render_package(ir: IRGraph, options: KfpOptions) -> tuple[str, dict[str, Any]]:
    """(package YAML, root input parameters with their defaults)."""
    doc, platform = build_pipeline(ir, options)
    params = doc["root"]["inputDefinitions"]["parameters"]
    header = [
        "# PIPELINE DEFINITION",
        f"# Name: {ir.name}",
        f"# Compiled by mlc from spec {str(ir.metadata.get('spec_hash', ''))[:12]}",
        "# Inputs:",
        *[
            f"#    {name}: {p['parameterType']} [Default: {p['defaultValue']!r}]"
            for name, p in sorted(params.items())
        ],
    ]
    body = dump_yaml(doc)
    if platform:
        body += "---\n" + dump_yaml(platform)
    return "\n".join(header) + "\n" + body, params


def emit_package(ir: IRGraph, options: KfpOptions) -> dict[str, str | bytes]:
    """Files of the kfp target: `pipeline.yaml`, and `recurring-runs.yaml` when scheduled."""
    text, params = render_package(ir, options)
    files: dict[str, str | bytes] = {options.filename: text}
    defaults = {name: p["defaultValue"] for name, p in params.items()}
    runs = recurring_runs(
        ir,
        options.filename,
        options.namespace,
        options.service_account,
        options.experiment,
        defaults,
    )
    if runs is not None:
        files["recurring-runs.yaml"] = dump_yaml(runs)
    from mlc.targets.kfp.trainjob import extra_files

    files.update(extra_files(ir, options))
    from mlc.targets.kfp.spark import extra_files as spark_files

    files.update(spark_files(ir, options))
    from mlc.targets.kfp.monitor import monitor_files

    files.update(monitor_files(ir, options, dump_yaml))
    files["Dockerfile"] = runtime_dockerfile(ir, options)
    return files


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


def runtime_dockerfile(ir: IRGraph, options: KfpOptions) -> str:
    """The runtime image's Dockerfile: mlc with the extras the spec's steps need (its training
    framework, kfp, Spark for the spark engine) and the spec's project folder."""
    from mlc.targets._image import image_extras
    from mlc.targets.base import COMPILER_VERSION
    from mlc.targets.kfp.spark import DRIVER_FILE, SPARK_VERSION

    extras = image_extras(ir, ("ml", "kfp"), training=True)
    spark = "spark" in extras
    lines = [
        f"# The runtime image of the {ir.name} pipeline: every component"
        + (" and SparkApplication pod" if spark else "")
        + " runs",
        "# mlc's step entry in it.",
        f"# Build from the spec's project folder (copied to {options.project_dir}, the pipeline's"
        " project_dir):",
        f"#   docker build -f <this file> -t {options.image} <project folder>",
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
    lines += [f"COPY . {options.project_dir}", f"WORKDIR {options.project_dir}", ""]
    return "\n".join(lines)
