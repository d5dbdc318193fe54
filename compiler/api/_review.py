"""Reviewing a change before it ships: `plan`, `cost` and `diff`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlc.compiler.api._check import UsageError

if TYPE_CHECKING:
    from mlc.compiler.cost.report import CostReport
    from mlc.compiler.diff.report import DiffReport
    from mlc.compiler.plan import PlanReport


def plan(
    spec_path: str | Path,
    targets: Sequence[str] = (),
    out_dir: str | Path = "out",
    overrides: Sequence[str] = (),
    policy_files: Sequence[str | Path] = (),
) -> PlanReport:
    """What compiling `spec_path` would change against `out_dir/<target>/mlc-manifest.json`:
    files, runs, cost and policies.

    Args:
        targets: the targets to plan (default: those of the spec's `targets:` section).

    Raises:
        DiagnosticError: the spec cannot be built into IR.
        UsageError: no target named, and the spec names none.
    """
    from mlc.compiler.load import load_spec
    from mlc.compiler.plan import plan_spec

    if not targets:
        # what the spec itself asks for; its errors are reported by `plan_spec` below
        declared = load_spec(spec_path, list(overrides)).data.get("targets")
        targets = sorted(declared) if isinstance(declared, dict) else []
    if not targets:
        raise UsageError(
            f"{spec_path} names no targets (no 'targets:' section): name at least one "
            "--target (see 'mlc targets')"
        )
    return plan_spec(spec_path, targets, out_dir, overrides, policy_files)


def cost(
    spec_path: str | Path,
    overrides: Sequence[str] = (),
    targets: Sequence[str] = (),
    pricing: str | Path | None = None,
    spot: bool = False,
) -> CostReport:
    """Estimated cost (training, tuning, serving, monitoring, storage) per run and per month
    of what `targets` emit (default: the spec's `targets:`, else all)."""
    from mlc.compiler.cost.report import cost_report

    return cost_report(spec_path, overrides, targets, pricing, spot)


def diff(
    base: str,
    head: str,
    *,
    base_ref: str | None = None,
    targets: Sequence[str] = (),
    policy_files: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
) -> DiffReport:
    """Semantic diff of two specs (each a spec path or `git-ref:REF:PATH`): changes by facet
    and risk, output, cost and policy deltas; with `base_ref`, the base is `head` at that ref."""
    from mlc.compiler.diff import diff_specs

    return diff_specs(
        base,
        head,
        base_ref=base_ref,
        targets=targets,
        policy_files=policy_files,
        overrides=overrides,
    )
