"""kserve and k8s are one serving-target base (`targets/_serving.py`) with their own builders.

Their goldens (tests/targets/test_monitoring_goldens.py) prove the bytes did not move; this checks
the shared part itself: the MLC711 refusal, the GPU check and the empty emit without a deployment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlc.compiler.api import check
from mlc.targets._serving import ServingBuilder, ServingTarget
from mlc.targets.base import EmitContext
from mlc.targets.k8s import K8sTarget, K8sTargetOptions
from mlc.targets.kserve import KServeOptions, KServeTarget

CREDIT = Path(__file__).resolve().parents[2] / "examples" / "credit" / "mlc.yaml"
SERVING = [(KServeTarget, KServeOptions), (K8sTarget, K8sTargetOptions)]


@pytest.mark.parametrize(("target", "options"), SERVING)
def test_one_base_without_copies(target: type[ServingTarget], options: type) -> None:
    assert issubclass(target, ServingTarget) and issubclass(target.builder, ServingBuilder)
    for name in ("check", "emit"):
        assert name not in vars(target), f"{target.__name__} copies {name}"
    assert target.options_model is options


@pytest.mark.parametrize(("target", "options"), SERVING)
def test_no_online_deployment_is_mlc711_naming_the_target(
    target: type[ServingTarget], options: type
) -> None:
    ir = check(CREDIT, ["~deployment"]).ir
    ctx = EmitContext(options=options())
    found = target().check(ir, ctx)
    assert [(d.code, d.path) for d in found] == [("MLC711", "deployment")]
    assert f"the {target.name} target serves online deployments" in found[0].message
    assert target().emit(ir, ctx) == {}


@pytest.mark.parametrize(("target", "options"), SERVING)
def test_gpu_the_cloud_lacks_is_checked_by_both(target: type[ServingTarget], options: type) -> None:
    ir = check(CREDIT, ["+deployment.resources.gpu={count: 1, type: nvidia-tesla-p4}"]).ir
    found = target().check(ir, EmitContext(options=options()))
    assert [d.code for d in found] == ["MLC710"]


def test_wrong_options_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match="k8s target needs K8sTargetOptions"):
        K8sTarget().emit(check(CREDIT).ir, EmitContext(options=KServeOptions()))


@pytest.mark.parametrize("target", ["kserve", "k8s"])
def test_manifests_run_mlc_serve_with_options_it_has_and_ship_its_dockerfile(
    tmp_path: Path, target: str
) -> None:
    """The container's command line parses with `mlc serve`'s own options; the image that runs
    it is built by the emitted Dockerfile, as a non-root user."""
    import typer.main
    import yaml

    from mlc.compiler.api import compile_spec
    from mlc.compiler.cli import load_commands

    overrides = ["deployment.platform=k8s"] if target == "k8s" else []
    compile_spec(CREDIT, [target], tmp_path, overrides)
    command = typer.main.get_command(load_commands(("mlc.compiler.cli.serve",)))
    serve = command.commands["serve"]  # type: ignore[attr-defined]
    containers = [
        c
        for path in (tmp_path / target).rglob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] in ("Deployment", "InferenceService")
        for c in (
            doc["spec"]["template"]["spec"]["containers"]
            if doc["kind"] == "Deployment"
            else doc["spec"]["predictor"]["containers"]
        )
    ]
    assert containers
    for container in containers:
        assert container["command"] == ["mlc"] and container["args"][0] == "serve"
        ctx = serve.make_context("serve", list(container["args"][1:]))
        # None: the canary strategy's tracks, served (and judged) by the server itself
        assert ctx.params["alias"] in ("champion", "challenger", None)
        assert ctx.params["host"] == "0.0.0.0"
    dockerfile = (tmp_path / target / "Dockerfile").read_text()
    assert dockerfile.startswith("# The serving image of credit-risk")
    assert 'ENTRYPOINT ["mlc"]' in dockerfile and "USER 10001" in dockerfile
    assert "COPY . /project" in dockerfile
    assert containers[0]["image"] in dockerfile
