"""The pipeline graph as a KFP `PipelineSpec` document, built directly as plain data.

kfp's DSL rebuilds and re-sanitises its whole graph for every task it adds (quadratic in the
number of steps); building the spec here is linear, and the result is the same schema, checked
by kfp's own protobuf parser, loader and local runner in the tests.

Layout (the same nesting kfp's compiler gives `dsl.ExitHandler`, `dsl.If`/`dsl.Else` and
`dsl.ParallelFor`):

    root ── exit-handler-1 ── every unconditional step
         │                └─ condition-branches-1 ── condition-2 (gate passed): register, …
         │                                        └─ condition-3 (else): gate-rejected
         └─ mlc-exit-handler (runs whatever happened: audit record, failure report)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.compiler.ir.model import EXECUTED_KINDS
from mlc.targets.base import parse_path
from mlc.targets.kfp import KfpOptions, spark, trainjob
from mlc.targets.kfp.components import (
    Component,
    Override,
    component_for,
    component_spec,
    executor_spec,
    exit_source,
    function_source,
    output_key,
    rejected_source,
    schema,
)
from mlc.targets.kfp.platform import executor_platform, resources_spec

PROJECT_DIR = "project_dir"
"""Pipeline parameter naming the project folder (relative data paths resolve against it)."""
EXIT_TASK = "mlc-exit-handler"
REJECTED_TASK = "gate-rejected"
_CHANNEL = "pipelinechannel--"


def pipeline_steps(ir: IRGraph) -> list[Step]:
    """The steps the kfp target realises, in the IR's deterministic order."""
    return [s for s in ir.steps if s.kind in EXECUTED_KINDS]


def parameter_name(dotted: str) -> str:
    """Pipeline parameter name of an overridable spec path.

    >>> parameter_name("evaluation.gates[0].threshold")
    'evaluation_gates_0_threshold'
    """
    return re.sub(r"\W+", "_", dotted).strip("_")


def _lookup(params: Any, path: tuple[str | int, ...]) -> tuple[bool, Any]:
    node = params
    for key in path:
        if isinstance(node, dict) and isinstance(key, str) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return False, None
    return True, node


def overrides(ir: IRGraph, steps: list[Step]) -> tuple[dict[str, list[Override]], list[str]]:
    """Wire each overridable spec path into the params of the steps that carry it.

    A path reaches a step when it shares the start of the step's origin and the rest of it names
    a value in the step's params (`data.split.seed` -> step `split` (origin `data.split`), key
    `seed`). Returns the overrides per step id, and the paths that reach no step.
    """
    per_step: dict[str, list[Override]] = {}
    unmatched = []
    for dotted in ir.settings.get("overridable", []):
        path = parse_path(dotted)
        hit = False
        for step in steps:
            origin = parse_path(step.origin)
            for k in range(len(origin), 0, -1):
                if path[:k] != origin[:k]:
                    continue
                found, value = _lookup(step.params, path[k:])
                if found and path[k:] and type(value) in (bool, int, float, str, list, dict):
                    per_step.setdefault(step.id, []).append(
                        Override(parameter_name(dotted), list(path[k:]), value)
                    )
                    hit = True
                break
        if not hit:
            unmatched.append(dotted)
    return per_step, unmatched


@dataclass
class Dag:
    """A DAG component under construction (the root, or a group such as a condition)."""

    name: str
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    in_params: dict[str, str] = field(default_factory=dict)
    in_artifacts: dict[str, dict[str, str]] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dag": {"tasks": self.tasks}}
        inputs: dict[str, Any] = {}
        if self.in_artifacts:
            inputs["artifacts"] = {k: {"artifactType": v} for k, v in self.in_artifacts.items()}
        if self.in_params:
            inputs["parameters"] = {k: {"parameterType": v} for k, v in self.in_params.items()}
        if inputs:
            out["inputDefinitions"] = inputs
        return out


def _inputs(task: dict[str, Any], kind: str) -> dict[str, Any]:
    inputs: dict[str, Any] = task.setdefault("inputs", {})
    bucket: dict[str, Any] = inputs.setdefault(kind, {})
    return bucket


def _depend(task: dict[str, Any], producer: str) -> None:
    deps = task.setdefault("dependentTasks", [])
    if producer not in deps:
        deps.append(producer)
        deps.sort()


class Builder:
    """Places tasks into nested DAGs and threads every input down to the task that uses it."""

    def __init__(self) -> None:
        self.root = Dag("root")
        self.holder: dict[str, dict[str, Any]] = {}
        """DAG name -> the task (in its parent) that runs it."""
        self.depth_of: dict[str, int] = {}
        """Task name -> depth of the DAG it lives in (root is 0)."""
        self.extra: list[Dag] = []
        """Groups beyond the fixed ones (parallel tuning loops)."""

    def group(self, parent: Dag, task_name: str, dag: Dag) -> dict[str, Any]:
        task: dict[str, Any] = {"componentRef": {"name": dag.name}, "taskInfo": {"name": task_name}}
        parent.tasks[task_name] = task
        self.holder[dag.name] = task
        return task

    def artifact(
        self, chain: list[Dag], consumer: dict[str, Any], producer: str, key: str, cls: str
    ) -> dict[str, Any]:
        """The input spec a task in `chain[-1]` uses to read `producer`'s output `key`."""
        here = len(chain) - 1
        source = self.depth_of[producer]
        ref = {"taskOutputArtifact": {"outputArtifactKey": key, "producerTask": producer}}
        if source == here:
            _depend(consumer, producer)
            return ref
        channel = f"{_CHANNEL}{producer}-{key}"
        for level in range(source + 1, here + 1):
            chain[level].in_artifacts[channel] = schema(cls)
            holder = self.holder[chain[level].name]
            if level - 1 == source:
                _inputs(holder, "artifacts")[channel] = ref
                _depend(holder, producer)
            else:
                _inputs(holder, "artifacts")[channel] = {"componentInputArtifact": channel}
        return {"componentInputArtifact": channel}

    def parameter(
        self,
        chain: list[Dag],
        consumer: dict[str, Any],
        name: str,
        kfp_type: str,
        producer: str | None = None,
    ) -> dict[str, Any]:
        """Input spec for a pipeline parameter (`producer` None) or a task's output parameter."""
        here = len(chain) - 1
        source = 0 if producer is None else self.depth_of[producer]
        ref: dict[str, Any] = (
            {"componentInputParameter": name}
            if producer is None
            else {"taskOutputParameter": {"outputParameterKey": name, "producerTask": producer}}
        )
        if source == here:
            if producer is not None:
                _depend(consumer, producer)
            return ref
        channel = f"{_CHANNEL}{name}" if producer is None else f"{_CHANNEL}{producer}-{name}"
        for level in range(source + 1, here + 1):
            chain[level].in_params[channel] = kfp_type
            holder = self.holder[chain[level].name]
            if level - 1 == source:
                _inputs(holder, "parameters")[channel] = ref
                if producer is not None:
                    _depend(holder, producer)
            else:
                _inputs(holder, "parameters")[channel] = {"componentInputParameter": channel}
        return {"componentInputParameter": channel}


def _retry(count: int) -> dict[str, Any]:
    return {
        "backoffDuration": "0s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s",
        "maxRetryCount": count,
    }


def _const(value: Any) -> dict[str, Any]:
    return {"runtimeValue": {"constant": value}}


def build_pipeline(ir: IRGraph, options: KfpOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """(PipelineSpec document, Kubernetes platform document) for the IR's pipeline steps."""
    steps = pipeline_steps(ir)
    per_step, _ = overrides(ir, steps)
    b = Builder()
    main, branches = Dag("comp-exit-handler-1"), Dag("comp-condition-branches-1")
    passed, failed = Dag("comp-condition-2"), Dag("comp-condition-3")
    b.group(b.root, "exit-handler-1", main)
    components: dict[str, Any] = {}
    executors: dict[str, Any] = {}
    platform: dict[str, Any] = {}
    secrets = dict(ir.settings.get("security", {}).get("secrets", {}))
    root_params: dict[str, Any] = {
        PROJECT_DIR: {
            "defaultValue": options.project_dir,
            "isOptional": True,
            "parameterType": "STRING",
        }
    }
    conditional = [s for s in steps if s.when]
    gate_id = conditional[0].when.split(".")[0] if conditional and conditional[0].when else None
    if gate_id is not None:
        b.group(main, "condition-branches-1", branches)
        b.group(branches, "condition-2", passed)
        b.group(branches, "condition-3", failed)
    b.depth_of.update({"exit-handler-1": 0, "condition-branches-1": 1})
    chains = {
        "main": [b.root, main],
        "passed": [b.root, main, branches, passed],
        "failed": [b.root, main, branches, failed],
    }

    for step in steps:
        comp = component_for(ir, step, per_step.get(step.id, []))
        chain = chains["passed" if step.when else "main"]
        b.depth_of[step.id] = len(chain) - 1
        task = _step_task(b, chain, ir, comp, options)
        for ov in comp.overrides:
            root_params.setdefault(
                ov.parameter,
                {"defaultValue": ov.value, "isOptional": True, "parameterType": ov.kfp_type},
            )
        chain[-1].tasks[step.id] = task
        if _parallel_tuning(step) and not step.when:
            _tuning_workers(b, chain, ir, comp, options, task)
        # multi-node: a launcher pod, the TrainJob it creates gets the resources
        multi_node = trainjob.distributed(step)
        # spark engine: a launcher pod, the SparkApplication it creates does the work
        on_spark = not multi_node and spark.launched(step)
        fn, source = (
            trainjob.launcher_source(comp, options, secrets)
            if multi_node
            else spark.launcher_source(comp, options, secrets, ir)
            if on_spark
            else function_source(comp)
        )
        components[comp.name] = component_spec(comp)
        executors[comp.executor] = executor_spec(
            fn,
            source,
            options.image,
            options.install_kfp_package,
            None if multi_node or on_spark else resources_spec(step.resources, options),
        )
        config = (
            trainjob.launcher_platform(step, options)
            if multi_node or on_spark
            else executor_platform(step, options, secrets)
        )
        if config:
            platform[comp.executor] = config

    if gate_id is not None:
        cond = f"inputs.parameter_values['{_CHANNEL}{gate_id}-Output'] == true"
        for dag, expr in ((passed, cond), (failed, f"!({cond})")):
            holder = b.holder[dag.name]
            b.parameter(
                chains["passed" if dag is passed else "failed"],
                holder,
                "Output",
                "BOOLEAN",
                gate_id,
            )
            holder["triggerPolicy"] = {"condition": expr}
        _rejected(b, chains["failed"], ir, gate_id, options, components, executors)
    _exit_handler(b, ir, options, components, executors)
    for dag in (main, branches, passed, failed, *b.extra):
        if dag.name in b.holder:
            components[dag.name] = dag.spec()
    doc = {
        "components": components,
        "deploymentSpec": {"executors": executors},
        "pipelineInfo": {
            "name": ir.name,
            **(
                {"description": ir.metadata["description"]}
                if ir.metadata.get("description")
                else {}
            ),
        },
        "root": {"dag": {"tasks": b.root.tasks}, "inputDefinitions": {"parameters": root_params}},
        "schemaVersion": "2.1.0",
        # kfp stamps its own version here; mlc stamps a fixed word so outputs stay byte-stable.
        "sdkVersion": "mlc",
    }
    platform_doc = (
        {"platforms": {"kubernetes": {"deploymentSpec": {"executors": platform}}}}
        if platform
        else {}
    )
    return doc, platform_doc


def _step_task(
    b: Builder, chain: list[Dag], ir: IRGraph, comp: Component, options: KfpOptions
) -> dict[str, Any]:
    step = comp.step
    task: dict[str, Any] = {
        "cachingOptions": {"enableCache": True} if step.cache and options.caching else {},
        "componentRef": {"name": comp.name},
        "taskInfo": {"name": step.id},
    }
    params = _inputs(task, "parameters")
    params["mlc_params"] = _const(json.dumps(step.params, sort_keys=True, separators=(",", ":")))
    params["mlc_project_dir"] = b.parameter(chain, task, PROJECT_DIR, "STRING")
    for i, ov in enumerate(comp.overrides):
        params[f"mlc_override_{i}"] = b.parameter(chain, task, ov.parameter, ov.kfp_type)
    for name, (ir_name, cls) in comp.inputs.items():
        art = ir.artifact(step.inputs[ir_name])
        _inputs(task, "artifacts")[name] = b.artifact(
            chain, task, art.producer, output_key(ir.step(art.producer), art.name), cls
        )
    if step.retries:
        task["retryPolicy"] = _retry(step.retries)
    return task


def _parallel_tuning(step: Step) -> bool:
    return (
        step.kind is StepKind.TUNE
        and bool(step.params.get("storage"))
        and int(step.params.get("parallelism", 1)) > 1
    )


def _tuning_workers(
    b: Builder,
    chain: list[Dag],
    ir: IRGraph,
    comp: Component,
    options: KfpOptions,
    tune_task: dict[str, Any],
) -> None:
    """Trials in a `ParallelFor` sharing one Optuna study (the spec's shared storage).

    Every worker runs the tune step on the same study until it holds the spec's trial count;
    the tune step after the loop then only reads the study's best parameters.
    """
    step = comp.step
    workers = int(step.params["parallelism"])
    loop = Dag(f"comp-for-loop-{step.id}")
    b.extra.append(loop)
    name = f"for-loop-{step.id}"
    item = f"{_CHANNEL}loop-item-{step.id}"
    holder = b.group(chain[-1], name, loop)
    holder["iteratorPolicy"] = {"parallelismLimit": workers}
    holder["parameterIterator"] = {
        "itemInput": item,
        "items": {"raw": json.dumps(list(range(workers)))},
    }
    loop.in_params[item] = "NUMBER_INTEGER"
    b.depth_of[name] = len(chain) - 1
    inner = [*chain, loop]
    worker = f"{step.id}-worker"
    b.depth_of[worker] = len(inner) - 1
    # Workers share state outside the artifact store (the study), so they are never cached.
    task = _step_task(b, inner, ir, comp, options)
    task["cachingOptions"] = {}
    task["taskInfo"] = {"name": worker}
    loop.tasks[worker] = task
    _depend(tune_task, name)


def _rejected(
    b: Builder,
    chain: list[Dag],
    ir: IRGraph,
    gate_id: str,
    options: KfpOptions,
    components: dict[str, Any],
    executors: dict[str, Any],
) -> None:
    task: dict[str, Any] = {
        "cachingOptions": {},
        "componentRef": {"name": f"comp-{REJECTED_TASK}"},
        "taskInfo": {"name": REJECTED_TASK},
    }
    _inputs(task, "artifacts")["verdict"] = b.artifact(chain, task, gate_id, "verdict", "Artifact")
    chain[-1].tasks[REJECTED_TASK] = task
    fn, source = rejected_source()
    components[f"comp-{REJECTED_TASK}"] = {
        "executorLabel": f"exec-{REJECTED_TASK}",
        "inputDefinitions": {"artifacts": {"verdict": {"artifactType": schema("Artifact")}}},
    }
    executors[f"exec-{REJECTED_TASK}"] = executor_spec(
        fn, source, options.image, options.install_kfp_package
    )


def _exit_handler(
    b: Builder,
    ir: IRGraph,
    options: KfpOptions,
    components: dict[str, Any],
    executors: dict[str, Any],
) -> None:
    b.root.tasks[EXIT_TASK] = {
        "cachingOptions": {},
        "componentRef": {"name": f"comp-{EXIT_TASK}"},
        "dependentTasks": ["exit-handler-1"],
        "inputs": {
            "parameters": {
                "mlc_project_dir": {"componentInputParameter": PROJECT_DIR},
                "status": {"taskFinalStatus": {"producerTask": "exit-handler-1"}},
            }
        },
        "taskInfo": {"name": EXIT_TASK},
        "triggerPolicy": {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"},
    }
    fn, source = exit_source(ir.name, str(ir.metadata.get("spec_hash", "")))
    components[f"comp-{EXIT_TASK}"] = {
        "executorLabel": f"exec-{EXIT_TASK}",
        "inputDefinitions": {
            "parameters": {
                "mlc_project_dir": {"parameterType": "STRING"},
                "status": {"isOptional": True, "parameterType": "TASK_FINAL_STATUS"},
            }
        },
        "outputDefinitions": {"artifacts": {"record": {"artifactType": schema("Artifact")}}},
    }
    executors[f"exec-{EXIT_TASK}"] = executor_spec(
        fn, source, options.image, options.install_kfp_package
    )


__all__ = ["build_pipeline", "overrides", "parameter_name", "pipeline_steps"]
