"""Baseline for `bench_kfp.py`: the credit pipeline written by hand with kfp's DSL, then compiled.

This is what a team would write without mlc: one lightweight component per step calling the
runtime entry, a gate as `dsl.If`/`dsl.Else`, an exit handler, Kubernetes settings through
kfp-kubernetes. `--segments N` adds N ingest components (a model per segment) so the DSL's own
define + compile cost can be measured at 100 / 1,000 / 5,000 steps.

Usage: python benchmarks/kfp_baseline_dsl.py OUT.yaml [--segments N]
"""

# No `from __future__ import annotations`: kfp reads the real annotation objects.
import argparse

from kfp import compiler, dsl, kubernetes
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

IMAGE = "ghcr.io/example/mlc-runtime:0.1.0"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(params: str, project_dir: str, dataset: Output[Dataset]) -> None:
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "ingest",
            "--params",
            params,
            "--project-dir",
            project_dir,
            "--outputs",
            f"dataset={dataset.path}",
        ],
        check=True,
    )


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(
    params: str,
    project_dir: str,
    applications: Input[Dataset],
    dataset: Output[Dataset],
    report: Output[Markdown],
) -> None:
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "validate",
            "--params",
            params,
            "--project-dir",
            project_dir,
            "--inputs",
            f"applications={applications.path}",
            "--outputs",
            f"dataset={dataset.path}",
            f"report={report.path}",
        ],
        check=True,
    )


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def split(
    params: str,
    project_dir: str,
    seed: int,
    dataset: Input[Dataset],
    train: Output[Dataset],
    test: Output[Dataset],
) -> None:
    import json
    import subprocess
    import sys

    p = json.loads(params)
    p["seed"] = seed
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "split",
            "--params",
            json.dumps(p),
            "--project-dir",
            project_dir,
            "--inputs",
            f"dataset={dataset.path}",
            "--outputs",
            f"train={train.path}",
            f"test={test.path}",
        ],
        check=True,
    )


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def features(
    params: str, project_dir: str, train: Input[Dataset], transform: Output[Model]
) -> None:
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "features",
            "--params",
            params,
            "--project-dir",
            project_dir,
            "--inputs",
            f"train={train.path}",
            "--outputs",
            f"transform={transform.path}",
        ],
        check=True,
    )


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune(
    params: str,
    project_dir: str,
    train: Input[Dataset],
    transform: Input[Model],
    best_params: Output[Model],
    study: Output[Markdown],
) -> None:
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "tune",
            "--params",
            params,
            "--project-dir",
            project_dir,
            "--inputs",
            f"train={train.path}",
            f"transform={transform.path}",
            "--outputs",
            f"best_params={best_params.path}",
            f"study={study.path}",
        ],
        check=True,
    )


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(
    params: str,
    project_dir: str,
    max_iter: int,
    train: Input[Dataset],
    transform: Input[Model],
    best_params: Input[Model],
    model: Output[Model],
) -> None:
    import json
    import subprocess
    import sys

    p = json.loads(params)
    p["model"]["params"]["max_iter"] = max_iter
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "train",
            "--params",
            json.dumps(p),
            "--project-dir",
            project_dir,
            "--inputs",
            f"train={train.path}",
            f"transform={transform.path}",
            f"params={best_params.path}",
            "--outputs",
            f"model={model.path}",
        ],
        check=True,
    )


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    params: str,
    project_dir: str,
    model: Input[Model],
    test: Input[Dataset],
    metrics: Output[Metrics],
    predictions: Output[Dataset],
) -> None:
    import json
    import os
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "evaluate",
            "--params",
            params,
            "--project-dir",
            project_dir,
            "--inputs",
            f"model={model.path}",
            f"test={test.path}",
            "--outputs",
            f"metrics={metrics.path}",
            f"predictions={predictions.path}",
        ],
        check=True,
    )
    with open(os.path.join(metrics.path, "_meta.json")) as fh:
        for name, value in sorted(json.load(fh).get("metrics", {}).items()):
            metrics.log_metric(name, value)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def report(
    kind: str,
    params: str,
    project_dir: str,
    model: Input[Model],
    test: Input[Dataset],
    report: Output[Markdown],
) -> None:
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            kind,
            "--params",
            params,
            "--project-dir",
            project_dir,
            "--inputs",
            f"model={model.path}",
            f"test={test.path}",
            "--outputs",
            f"report={report.path}",
        ],
        check=True,
    )


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def gate(params: str, project_dir: str, metrics: Input[Metrics], verdict: Output[Markdown]) -> bool:
    import json
    import os
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "gate",
            "--params",
            params,
            "--project-dir",
            project_dir,
            "--inputs",
            f"metrics={metrics.path}",
            "--outputs",
            f"verdict={verdict.path}",
        ],
        check=True,
    )
    with open(os.path.join(verdict.path, "_meta.json")) as fh:
        return bool(json.load(fh).get("passed"))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(
    params: str,
    project_dir: str,
    model: Input[Model],
    metrics: Input[Metrics],
    verdict: Input[Markdown],
    model_version: Output[Model],
) -> None:
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "register",
            "--params",
            params,
            "--project-dir",
            project_dir,
            "--inputs",
            f"model={model.path}",
            f"metrics={metrics.path}",
            f"verdict={verdict.path}",
            "--outputs",
            f"model_version={model_version.path}",
        ],
        check=True,
    )


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def model_card(
    params: str,
    project_dir: str,
    metrics: Input[Metrics],
    verdict: Input[Markdown],
    card: Output[Markdown],
) -> None:
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "model_card",
            "--params",
            params,
            "--project-dir",
            project_dir,
            "--inputs",
            f"metrics={metrics.path}",
            f"verdict={verdict.path}",
            "--outputs",
            f"card={card.path}",
        ],
        check=True,
    )


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def rejected(verdict: Input[Markdown]) -> None:
    print("gate failed; nothing registered:", verdict.path)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def audit(status: dsl.PipelineTaskFinalStatus, project_dir: str) -> None:
    print(status.state, status.error_message, project_dir)


def build(segments: int) -> object:
    @dsl.pipeline(name="credit-risk")
    def pipeline(
        project_dir: str = "/project",
        data_split_seed: int = 42,
        training_model_params_max_iter: int = 150,
    ) -> None:
        exit_task = audit(project_dir=project_dir)
        with dsl.ExitHandler(exit_task):
            src = ingest(params="{}", project_dir=project_dir).set_caching_options(True)
            for i in range(segments):
                ingest(params=f'{{"segment": {i}}}', project_dir=project_dir)
            val = validate(
                params="{}", project_dir=project_dir, applications=src.outputs["dataset"]
            )
            sp = split(
                params="{}",
                project_dir=project_dir,
                seed=data_split_seed,
                dataset=val.outputs["dataset"],
            )
            ft = features(params="{}", project_dir=project_dir, train=sp.outputs["train"])
            kubernetes.use_secret_as_env(ft, "credit-risk", {"pseudonym_key": "MLC_PSEUDONYM_KEY"})
            tn = tune(
                params="{}",
                project_dir=project_dir,
                train=sp.outputs["train"],
                transform=ft.outputs["transform"],
            )
            tn.set_cpu_request("2").set_cpu_limit("2").set_memory_request("4Gi")
            tn.set_memory_limit("4Gi").set_retry(1)
            kubernetes.set_timeout(tn, 600)
            tr = train(
                params="{}",
                project_dir=project_dir,
                max_iter=training_model_params_max_iter,
                train=sp.outputs["train"],
                transform=ft.outputs["transform"],
                best_params=tn.outputs["best_params"],
            )
            tr.set_cpu_request("2").set_cpu_limit("2").set_memory_request("4Gi")
            tr.set_memory_limit("4Gi").set_retry(1)
            kubernetes.set_timeout(tr, 900)
            ev = evaluate(
                params="{}",
                project_dir=project_dir,
                model=tr.outputs["model"],
                test=sp.outputs["test"],
            )
            report(
                kind="explain",
                params="{}",
                project_dir=project_dir,
                model=tr.outputs["model"],
                test=sp.outputs["test"],
            )
            report(
                kind="fairness",
                params="{}",
                project_dir=project_dir,
                model=tr.outputs["model"],
                test=sp.outputs["test"],
            )
            gt = gate(params="{}", project_dir=project_dir, metrics=ev.outputs["metrics"])
            model_card(
                params="{}",
                project_dir=project_dir,
                metrics=ev.outputs["metrics"],
                verdict=gt.outputs["verdict"],
            ).set_caching_options(False)
            with dsl.If(gt.outputs["Output"] == True):  # noqa: E712 (kfp needs ==)
                register(
                    params="{}",
                    project_dir=project_dir,
                    model=tr.outputs["model"],
                    metrics=ev.outputs["metrics"],
                    verdict=gt.outputs["verdict"],
                ).set_caching_options(False)
            with dsl.Else():
                rejected(verdict=gt.outputs["verdict"])

    return pipeline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--segments", type=int, default=0)
    args = parser.parse_args()
    compiler.Compiler().compile(build(args.segments), args.out)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
