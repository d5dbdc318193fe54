"""Running a pipeline here and reading what runs left behind: `run`, `runs`, `lineage`,
`cache_info`, `cache_gc`, `audit_verify`, `audit_records`.

The functions on a project's state take its state folder (`.mlc/`, or the spec's
`targets.local.state_dir`); the CLI finds it from what the user named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.compiler.api._check import CheckResult, UsageError, check

if TYPE_CHECKING:
    from mlc.runtime.audit import Verification
    from mlc.targets.local.gc import CacheReport
    from mlc.targets.local.results import RunResult


@dataclass
class PipelineRun:
    """A `run`: the spec's check, and the run's outcome (None when the spec has errors: nothing
    ran)."""

    check: CheckResult
    outcome: RunResult | None


def run(
    spec_path: str | Path,
    overrides: Sequence[str] = (),
    *,
    use_cache: bool = True,
    from_step: str | None = None,
    only: str | None = None,
    tracking_uri: str | None = None,
    quiet: bool = False,
    on_checked: Callable[[CheckResult], None] | None = None,
    reason: dict[str, Any] | None = None,
) -> PipelineRun:
    """Check the spec for the `local` target and run its pipeline: cached, resumable, gated.

    Args:
        spec_path: the spec.
        overrides: Hydra overrides.
        use_cache: reuse cached step outputs.
        from_step: re-execute this step and all after it.
        only: execute only this step (its inputs from the cache).
        tracking_uri: MLflow tracking URI (default: the spec's, else a sqlite store in the
            state folder).
        quiet: no progress lines.
        on_checked: called with the check before anything runs (to show its warnings first).
        reason: why this run trains (a retrain decision with its evidence), kept with the run
            record and the version it registers.

    Raises:
        UsageError: the run cannot start (an unknown step, another run holding the project).
    """
    from mlc.targets.local import LocalOptions
    from mlc.targets.local.executor import RunError, RunOptions, execute

    result = check(spec_path, overrides, targets=["local"])
    if on_checked is not None:
        on_checked(result)
    if not result.ok:
        return PipelineRun(result, None)
    options = result.options["local"]
    assert isinstance(options, LocalOptions)
    project = Path(result.loaded.project_dir)
    run_options = RunOptions(
        project_dir=project,
        state_dir=project / options.state_dir,
        tracking_uri=tracking_uri or options.tracking_uri,
        use_cache=use_cache,
        from_step=from_step,
        only=only,
        quiet=quiet,
        reason=reason,
    )
    try:
        return PipelineRun(result, execute(result.ir, run_options))
    except RunError as exc:
        raise UsageError(str(exc)) from exc


def runs(state_dir: str | Path) -> list[dict[str, Any]]:
    """The run records under `state_dir/runs/`, newest first (a killed run is `interrupted`)."""
    from mlc.targets.local.executor import list_runs

    return list_runs(state_dir)


def lineage(
    state_dir: str | Path,
    model: str | None = None,
    *,
    version: str | None = None,
    data_hash: str | None = None,
    spec_hash: str | None = None,
) -> list[dict[str, Any]]:
    """Which data, spec and code produced which model version (hashes match as prefixes)."""
    from mlc.runtime.lineage import query

    return query(Path(state_dir), model, version=version, data_hash=data_hash, spec_hash=spec_hash)


def cache_info(state_dir: str | Path) -> CacheReport:
    """How many entries the step cache holds, their size, and what no entry vouches for."""
    from mlc.targets.local.gc import cache_info as info

    return info(Path(state_dir))


def cache_gc(state_dir: str | Path, *, keep_runs: int = 3, dry_run: bool = False) -> CacheReport:
    """Drop cache entries the newest `keep_runs` runs did not use (never registered models).

    Raises:
        UsageError: a run holds the project.
    """
    from mlc.targets.local.gc import collect_garbage
    from mlc.targets.local.options import RunError

    try:
        return collect_garbage(Path(state_dir), keep_runs=keep_runs, dry_run=dry_run)
    except RunError as exc:
        raise UsageError(str(exc)) from exc


@dataclass
class AuditVerification:
    """`audit_verify`'s answer: the outcome and the log it is about."""

    outcome: Verification
    log: Path

    def describe(self) -> str:
        return self.outcome.describe(self.log)


def audit_verify(
    state_dir: str | Path,
    spec: str | Path | None = None,
    *,
    tracking_uris: Sequence[str] = (),
    deep: bool = False,
) -> AuditVerification:
    """Check the audit chain byte for byte, its MACs when keyed, and its heads outside the log.

    Args:
        state_dir: the project's state folder.
        spec: the spec; its `governance.audit.hmac_key` names the key of a keyed log.
        tracking_uris: further tracking stores holding the log's head.
        deep: also re-hash the cache entries and registered models the log names.
    """
    from mlc.runtime.audit import audit_path, verify

    state = Path(state_dir)
    outcome = verify(
        state, key_name=_audit_key_setting(spec), tracking_uris=tracking_uris, deep=deep
    )
    return AuditVerification(outcome, audit_path(state))


def _audit_key_setting(spec: str | Path | None) -> str | None:
    """`governance.audit.hmac_key` of the spec, read without validating the whole spec."""
    if spec is None:
        return None
    from mlc.compiler.load import load_spec

    try:
        data = load_spec(spec).data
    except Exception:
        # A spec that does not load says nothing readable; the checkpoint still names the key.
        return None
    audit = (data.get("governance") or {}).get("audit") if isinstance(data, dict) else None
    name = audit.get("hmac_key") if isinstance(audit, dict) else None
    return str(name) if name else None


def audit_records(state_dir: str | Path, last: int | None = None) -> list[dict[str, Any]]:
    """The audit log's records, oldest first (the last `last` of them).

    Raises:
        UsageError: there is no audit log in `state_dir`.
    """
    from mlc.runtime.audit import audit_path, read

    state = Path(state_dir)
    if not audit_path(state).is_file():
        raise UsageError(f"no audit log at {audit_path(state)}")
    records = read(state)
    return records[-last:] if last is not None else records
