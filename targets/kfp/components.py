"""One KFP component per IR step: its interface, executor and generated Python function.

Each component is a lightweight Python component whose function calls the runtime step entry
(`python -m mlc.runtime step KIND …`), so the same package runs on a cluster (in the runtime
image) and under `kfp.local`'s subprocess runner. The function source is generated here in the
exact shape kfp's own compiler embeds, which kfp's executor loads at run time.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from mlc.compiler.ir import ArtifactType, IRGraph, Step, StepKind

SCHEMA_VERSION = "0.0.1"
_ARTIFACT_CLASS: dict[ArtifactType, str] = {
    ArtifactType.DATASET: "Dataset",
    ArtifactType.PREDICTIONS: "Dataset",
    ArtifactType.TRANSFORM: "Model",
    ArtifactType.MODEL: "Model",
    ArtifactType.METRICS: "Metrics",
    ArtifactType.PARAMS: "Artifact",
    ArtifactType.VERDICT: "Artifact",
    ArtifactType.MODEL_VERSION: "Artifact",
}
_REPORT_CLASS = {"markdown": "Markdown", "html": "HTML"}
PARAM_TYPES: dict[type, tuple[str, str]] = {
    bool: ("BOOLEAN", "bool"),
    int: ("NUMBER_INTEGER", "int"),
    float: ("NUMBER_DOUBLE", "float"),
    str: ("STRING", "str"),
    list: ("LIST", "list"),
    dict: ("STRUCT", "dict"),
}

# kfp's lightweight-component launcher: write the function source to a file, run kfp's executor.
_LAUNCHER = (
    'program_path=$(mktemp -d)\n\nprintf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
    "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"
    "                         --component_module_path"
    '                         "$program_path/ephemeral_component.py"'
    '                         "$@"\n'
)
_INSTALL = (
    '\nif ! [ -x "$(command -v pip)" ]; then\n    python3 -m ensurepip || python3 -m ensurepip'
    " --user || apt-get install python3-pip\nfi\n\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip"
    " install --quiet --no-warn-script-location 'kfp==2.17.3' '--no-deps'"
    ' \'typing-extensions>=3.7.4,<5; python_version<"3.9"\' && "$0" "$@"\n'
)
_PRELUDE = "import kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n\n"


def schema(cls: str) -> dict[str, str]:
    return {"schemaTitle": f"system.{cls}", "schemaVersion": SCHEMA_VERSION}


def artifact_class(ir: IRGraph, artifact_id: str) -> str:
    art = ir.artifact(artifact_id)
    if art.type is ArtifactType.REPORT:
        return _REPORT_CLASS.get(str(art.meta.get("format", "")), "Artifact")
    return _ARTIFACT_CLASS.get(art.type, "Artifact")


def py_name(name: str) -> str:
    """A Python identifier for an IR name (`ingest-applications` -> `ingest_applications`).

    >>> py_name("model-card"), py_name("class"), py_name("mlc_params")
    ('model_card', 'a_class', 'a_mlc_params')
    """
    ident = re.sub(r"\W", "_", name)
    if not ident.isidentifier() or keyword.iskeyword(ident) or ident.startswith("mlc_"):
        ident = f"a_{ident}"
    return ident


@dataclass
class Override:
    """A pipeline parameter wired into one step's params."""

    parameter: str
    """Pipeline parameter name (`training_model_params_max_iter`)."""
    path: list[str | int]
    """Where the value goes inside the step's params."""
    value: Any
    """Default (the spec's value)."""

    @property
    def kfp_type(self) -> str:
        return PARAM_TYPES[type(self.value)][0]


@dataclass
class Component:
    """A step's component and executor, ready to be placed in the PipelineSpec."""

    step: Step
    inputs: dict[str, tuple[str, str]] = field(default_factory=dict)
    """kfp input name -> (IR input name, artifact class)."""
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)
    overrides: list[Override] = field(default_factory=list)
    tracking: dict[str, str | None] = field(default_factory=dict)
    """The spec's `tracking` (uri, artifact_location): without it a pod's registry would be a
    sqlite file inside the pod, lost with it."""

    @property
    def name(self) -> str:
        return f"comp-{self.step.id}"

    @property
    def executor(self) -> str:
        return f"exec-{self.step.id}"

    @property
    def returns_verdict(self) -> bool:
        return self.step.kind is StepKind.GATE


def output_key(step: Step, name: str) -> str:
    """kfp name of a step's output: kfp wants one namespace for a component's inputs and outputs
    (the fairness step reads a `model` and writes a mitigated `model`)."""
    key = py_name(name)
    return f"{key}_out" if name in step.inputs else key


def component_for(ir: IRGraph, step: Step, overrides: list[Override]) -> Component:
    tracking = dict(ir.settings.get("tracking") or {})
    comp = Component(step, overrides=overrides, tracking=tracking)
    for name, art in sorted(step.inputs.items()):
        comp.inputs[py_name(name)] = (name, artifact_class(ir, art))
    for name, art in sorted(step.outputs.items()):
        comp.outputs[output_key(step, name)] = (name, artifact_class(ir, art))
    return comp


def component_spec(comp: Component) -> dict[str, Any]:
    params: dict[str, Any] = {
        "mlc_params": {"parameterType": "STRING"},
        "mlc_project_dir": {"parameterType": "STRING"},
    }
    for i, ov in enumerate(comp.overrides):
        params[f"mlc_override_{i}"] = {"parameterType": ov.kfp_type}
    spec: dict[str, Any] = {
        "executorLabel": comp.executor,
        "inputDefinitions": {"parameters": params},
    }
    if comp.inputs:
        spec["inputDefinitions"]["artifacts"] = {
            n: {"artifactType": schema(cls)} for n, (_, cls) in comp.inputs.items()
        }
    outputs: dict[str, Any] = {}
    if comp.outputs:
        outputs["artifacts"] = {
            n: {"artifactType": schema(cls)} for n, (_, cls) in comp.outputs.items()
        }
    if comp.returns_verdict:
        outputs["parameters"] = {"Output": {"parameterType": "BOOLEAN"}}
    if outputs:
        spec["outputDefinitions"] = outputs
    return spec


def signature(comp: Component) -> list[str]:
    """A component function's parameters: the step's params, project folder, each pipeline
    override, then its input and output artifacts."""
    sig = ["mlc_params: str", "mlc_project_dir: str"]
    sig += [
        f"mlc_override_{i}: {PARAM_TYPES[type(ov.value)][1]}" for i, ov in enumerate(comp.overrides)
    ]
    sig += [f"{n}: Input[{cls}]" for n, (_, cls) in comp.inputs.items()]
    sig += [f"{n}: Output[{cls}]" for n, (_, cls) in comp.outputs.items()]
    return sig


def apply_overrides(comp: Component) -> list[str]:
    """Lines of a component function putting the pipeline's overrides into `mlc_step`."""
    overrides = ", ".join(
        f"({json.dumps(ov.path)}, mlc_override_{i})" for i, ov in enumerate(comp.overrides)
    )
    return [
        "    mlc_step = mlc_json.loads(mlc_params)",
        f"    for mlc_path, mlc_value in [{overrides}]:",
        "        mlc_node = mlc_step",
        "        for mlc_key in mlc_path[:-1]:",
        "            mlc_node = mlc_node[mlc_key]",
        "        mlc_node[mlc_path[-1]] = mlc_value",
    ]


def function_source(comp: Component) -> tuple[str, str]:
    """(function name, module source) of the step's component function."""
    step = comp.step
    fn = py_name(step.id)
    sig = signature(comp)
    ret = "bool" if comp.returns_verdict else "None"
    ins = ", ".join(f'"{ir}={{}}".format({n}.path)' for n, (ir, _) in comp.inputs.items())
    outs = ", ".join(f'"{ir}={{}}".format({n}.path)' for n, (ir, _) in comp.outputs.items())
    metrics = [n for n, (_, cls) in comp.outputs.items() if cls == "Metrics"]
    # Every local name starts with `mlc_`, which `py_name` keeps out of input/output names.
    lines = [
        f"def {fn}({', '.join(sig)}) -> {ret}:",
        f'    """IR step {step.id!r} ({step.kind.value}): the mlc runtime step entry."""',
        "    import json as mlc_json",
        "    import os as mlc_os",
        "    import subprocess as mlc_subprocess",
        "    import sys as mlc_sys",
        "",
        *apply_overrides(comp),
        '    mlc_argv = [mlc_sys.executable, "-m", "mlc.runtime", "step", '
        f'{json.dumps(step.kind.value)}, "--params",',
        '                mlc_json.dumps(mlc_step, sort_keys=True), "--project-dir", '
        "mlc_project_dir]",
        *(
            [f'    mlc_argv += ["--tracking-uri", {json.dumps(comp.tracking["uri"])}]']
            if comp.tracking.get("uri")
            else []
        ),
        *(
            [
                '    mlc_argv += ["--artifact-location", '
                f"{json.dumps(comp.tracking['artifact_location'])}]"
            ]
            if comp.tracking.get("artifact_location")
            else []
        ),
        f"    mlc_inputs = [{ins}]",
        f"    mlc_outputs = [{outs}]",
        "    if mlc_inputs:",
        '        mlc_argv += ["--inputs", *mlc_inputs]',
        "    if mlc_outputs:",
        '        mlc_argv += ["--outputs", *mlc_outputs]',
        "    mlc_subprocess.run(mlc_argv, check=True)",
    ]
    if metrics:
        lines += [
            f"    for mlc_art in [{', '.join(metrics)}]:",
            '        with open(mlc_os.path.join(mlc_art.path, "_meta.json")) as mlc_fh:',
            "            mlc_meta = mlc_json.load(mlc_fh)",
            '        for mlc_name, mlc_num in sorted((mlc_meta.get("metrics") or {}).items()):',
            "            if isinstance(mlc_num, (int, float)) and not isinstance(mlc_num, bool):",
            "                mlc_art.log_metric(mlc_name, float(mlc_num))",
        ]
    if comp.returns_verdict:
        verdict = next(n for n, (ir, _) in comp.outputs.items() if ir == "verdict")
        lines += [
            f'    with open(mlc_os.path.join({verdict}.path, "_meta.json")) as mlc_fh:',
            '        return bool(mlc_json.load(mlc_fh).get("passed"))',
        ]
    return fn, _PRELUDE + "\n".join(lines) + "\n\n"


def executor_spec(
    fn: str, source: str, image: str, install_kfp: bool, resources: dict[str, Any] | None = None
) -> dict[str, Any]:
    command = ["sh", "-ec", _LAUNCHER, source]
    if install_kfp:
        command = ["sh", "-c", _INSTALL, *command]
    container: dict[str, Any] = {
        "args": ["--executor_input", "{{$}}", "--function_to_execute", fn],
        "command": command,
        "image": image,
    }
    if resources:
        container["resources"] = resources
    return {"container": container}


def exit_source(pipeline: str, spec_hash: str) -> tuple[str, str]:
    """The exit handler's function: append the run's end to the audit log, report failure."""
    fn = "mlc_exit_handler"
    body = f'''def {fn}(mlc_project_dir: str, status: PipelineTaskFinalStatus,
        record: Output[Artifact]) -> None:
    """Writes the audit record of the run and reports a failed run (runs on success and failure)."""
    import json
    import os
    import sys

    details = {{"orchestrator": "kfp", "pipeline": {json.dumps(pipeline)},
               "job": status.pipeline_job_resource_name, "task": status.pipeline_task_name,
               "state": status.state, "error_code": status.error_code,
               "error": status.error_message}}
    from mlc.runtime import audit

    state_dir = os.path.join(mlc_project_dir, ".mlc")
    written = audit.append(state_dir, "run.end", spec_hash={json.dumps(spec_hash)},
                           project_dir=mlc_project_dir, details=details)
    os.makedirs(record.path, exist_ok=True)
    with open(os.path.join(record.path, "audit.json"), "w") as fh:
        json.dump(written, fh, indent=2, sort_keys=True, default=str)
    if status.state != "SUCCEEDED":
        print("mlc: pipeline {pipeline} failed: " + str(status.error_message), file=sys.stderr)
'''
    return fn, _PRELUDE + body + "\n"


def rejected_source() -> tuple[str, str]:
    """The gate's else branch: say why nothing was registered."""
    fn = "mlc_gate_rejected"
    body = f'''def {fn}(verdict: Input[Artifact]) -> None:
    """The gate failed: nothing is registered or deployed; print the verdict's reasons."""
    import json
    import os

    with open(os.path.join(verdict.path, "_meta.json")) as fh:
        meta = json.load(fh)
    print("mlc: gate failed, nothing registered:", json.dumps(meta, sort_keys=True, default=str))
'''
    return fn, _PRELUDE + body + "\n"
