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


def runtime_dockerfile(ir: IRGraph, options: KfpOptions) -> str:
    """The runtime image's Dockerfile (`targets._image.runtime_dockerfile`) with kfp in it."""
    from mlc.targets._image import runtime_dockerfile as dockerfile

    return dockerfile(ir, options.image, options.project_dir, ("ml", "kfp"))
