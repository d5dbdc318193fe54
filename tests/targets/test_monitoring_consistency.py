"""The consistency pass: rollback alerts, drift features, identities, GDPR regions."""

from __future__ import annotations

from dataclasses import replace

from support import CREDIT
from support.manifests import registry

from mlc.compiler.api import check
from mlc.compiler.diagnostics import DiagnosticError
from mlc.compiler.ir import IRGraph, StepKind
from mlc.compiler.passes import PassContext
from mlc.compiler.passes.consistency import check_consistency


def codes(overrides: list[str]) -> dict[str, list[str]]:
    result = check(CREDIT, overrides, [], registry())
    out: dict[str, list[str]] = {}
    for d in result.diagnostics:
        if d.code.startswith("MLC7"):
            out.setdefault(d.code, []).append(d.path)
    return out


def test_example_is_consistent() -> None:
    assert codes([]) == {}


def test_gdpr_outside_europe_is_located_and_reported_once() -> None:
    # The policy pass owns the gdpr region rule (MLC602); the consistency pass used to report
    # the same region again as MLC707, once for serving and once for storage.
    result = check(CREDIT, ["deployment.region=us-east-1"], [], registry())
    gdpr = [d for d in result.diagnostics if "gdpr" in d.message and "region" in d.message]
    assert [(d.code, d.path) for d in gdpr] == [("MLC602", "deployment.region")]
    assert gdpr[0].location is not None and gdpr[0].location.file == "<override>"
    assert "serving and storage are placed in 'us-east-1' (aws)" in gdpr[0].message


def test_rollout_without_monitoring_or_conditions() -> None:
    assert codes(["~monitoring", "feedback.triggers=[{kind:schedule,cron:'0 3 * * 1'}]"]) == {
        "MLC702": ["deployment.strategy.rollback"]
    }
    assert codes(["deployment.strategy.rollback=[]"]) == {"MLC701": ["deployment.strategy"]}
    assert codes(["monitoring.alerts=[]"]) == {"MLC704": ["deployment.strategy.rollback"]}


def test_pass_checks_the_ir_it_is_given() -> None:
    """Drift features and identities are checked on the IR itself (as a plugin may build it)."""
    ir = check(CREDIT, [], [], registry()).ir
    monitor = ir.first(StepKind.MONITOR)
    assert monitor is not None
    drift = {**monitor.params["drift"], "features": ["income", "no_such_column"]}
    bad_monitor = replace(monitor, params={**monitor.params, "drift": drift})
    deploy = ir.first(StepKind.DEPLOY)
    assert deploy is not None
    bad_deploy = replace(deploy, inputs={**deploy.inputs, "identity": "storage.artifacts"})
    steps = [
        bad_monitor if s.id == monitor.id else bad_deploy if s.id == deploy.id else s
        for s in ir.steps
    ]
    broken = IRGraph(ir.name, ir.metadata, ir.settings, steps, ir.artifacts)
    found = {(d.code, d.path) for d in check_consistency(broken, PassContext())}
    assert ("MLC705", "monitoring.drift.features[1]") in found
    assert ("MLC706", "deployment") in found


def test_errors_stop_compile() -> None:
    from mlc.compiler.api import compile_spec

    try:
        compile_spec(
            CREDIT,
            ["kserve"],
            "/nonexistent/never-written",
            ["deployment.region=us-east-1"],
            registry(),
        )
    except DiagnosticError as exc:
        assert any(d.code == "MLC602" for d in exc.diagnostics)
    else:
        raise AssertionError("a GDPR violation must stop the compile")
