"""The local executor: runs the IR's pipeline steps in-process, cached, resumable and audited.

How a run proceeds (`execute`):

1. Take the project's run lock (`.mlc/run.lock`, released by the kernel even on `kill -9`),
   read the cache index and clear the output folders a killed run left without an index line.
2. Walk the pipeline steps in the IR's topological order. Each step gets a cache key: sha256 of
   step kind, implementation version (the step module's `VERSION`, else a hash of its source),
   params, the content hashes of its inputs, the fingerprint of files it reads from outside (an
   ingest source) and, for the gate, the current champion's metrics.
3. A key with a complete, intact entry is a hit (see `mlc.targets.local.cache` for the
   layout: one folder per output, `.mlc/cache/<key>.<output>/`, and an append-only
   `index.jsonl` whose line for the key is written once the step returned and every output
   file was hashed). A kill at any moment leaves either no index line (the folders are
   leftovers, cleared by the next run) or a complete entry. An entry whose files no longer
   match its index line is corrupt: it is reported, dropped and recomputed.
4. Steps with `when: <gate>.passed` are skipped when that gate's verdict failed; the run then
   ends with status `gate_failed` (exit 3 in the CLI).
5. A run record (`.mlc/runs/<run id>.json`), OpenLineage events (`.mlc/lineage/events/`) and
   audit records (`run.start`, `step.outputs` per executed step with the digests of its files,
   `gate.verdict`, `run.end`) are written as the run goes.

`--from STEP` executes STEP and everything after it. `--only STEP` executes STEP alone: the
steps it reads from (its ancestors and the gates its `when` names) must be cached, else the
run stops before anything executes, naming the first of them to run; any other step is taken
from the cache when its key (on the inputs as they are now) has an entry, and is not run
otherwise. A gate whose champion is this run's own model compares nothing (the champion's
metrics stay out of its key, so a rerun stays a hit); the verdict the run reports names that
champion version.

`cache: false` steps in the IR (register, model card) depend on the registry as well as their
inputs; here their key also covers the tracking URI, and the register step itself refuses to
create a second version of a model it already registered, so a rerun never duplicates one.

The per-step path is kept to the file operations a plain script writing the same artifacts
makes, plus three appended lines: one `mkdir` per output folder, the step's own writes, reading
each output's `_meta.json`, one index line, one audit record (not fsynced; the run's last
record is) and one flush of the step's lineage events (see
`mlc.targets.local.cache` for why a fresh payload is not read back).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlc.compiler.ir import EXECUTED_KINDS, IRGraph, Step, StepKind
from mlc.runtime import store
from mlc.runtime.context import BudgetExceeded, StepError
from mlc.runtime.lineage import RunEventLines, sender_for
from mlc.targets.local.cache import (
    CACHE_LAYOUT,
    IMPL_BY_KIND,
    INDEX_FILE,
    CacheIndex,
    check_files,
    digest,
    hash_outputs,
    implementation_version,
    module_version,
    output_dir,
    source_fingerprint,
)
from mlc.targets.local.facts import RunFacts
from mlc.targets.local.gates import parse_when, read_verdict, with_incumbent
from mlc.targets.local.journal import (
    EventLog,
    close_interrupted,
    has_ended,
    new_run_id,
    run_lock,
    write_record,
)
from mlc.targets.local.options import RunError, RunOptions, StepFunction
from mlc.targets.local.progress import Progress, list_runs
from mlc.targets.local.results import RunResult, StepOutcome

CACHE_DIR = "cache"


class Executor:
    """One run of an IR's pipeline layer. Use `execute()`; this class holds the run's state."""

    def __init__(
        self, ir: IRGraph, options: RunOptions, steps: Mapping[str, StepFunction] | None = None
    ) -> None:
        self.ir = ir
        self.options = options
        self.state: Path = options.state_dir  # type: ignore[assignment]
        self.cache = self.state / CACHE_DIR
        # Plain strings on the per-step path: pathlib's parsing costs more than the syscalls.
        self._cache = str(self.cache)
        self.index: CacheIndex | None = None
        self.steps_impl = steps
        self.run_id = options.run_id or new_run_id()
        self.pipeline = [s for s in ir.steps if s.kind in EXECUTED_KINDS]
        self.outcomes: dict[str, StepOutcome] = {}
        self.progress = Progress(options)
        self.events = EventLog(self.state, self.run_id)
        self._event_lines = RunEventLines(
            ir.name, self.run_id, sender_for(ir.settings.get("governance"))
        )
        self.spec_hash = str(ir.metadata.get("spec_hash", ""))
        secret_names = (ir.settings.get("security") or {}).get("secrets") or {}
        secrets = {n: os.environ[n] for n in sorted(secret_names) if n in os.environ}
        self.secrets_digest = digest(secrets) if secrets else ""
        audit_settings = (ir.settings.get("governance") or {}).get("audit") or {}
        self.audit_key: str | None = audit_settings.get("hmac_key")
        if self.audit_key and self.audit_key not in secret_names:
            raise RunError(
                f"governance.audit.hmac_key names '{self.audit_key}', which security.secrets "
                "does not declare; add it there with its reference"
            )
        if self.audit_key and not os.environ.get(self.audit_key):
            raise RunError(
                f"governance.audit.hmac_key: the audit key ${self.audit_key} is not set; "
                "set it (from its secret reference) to run"
            )
        tracking = ir.settings.get("tracking") or {}
        try:
            configured = store.configured_uri(tracking.get("uri"))
            artifacts_at = store.configured_uri(
                tracking.get("artifact_location"), "tracking.artifact_location"
            )
        except store.StoreError as exc:
            raise RunError(str(exc)) from None
        self.tracking_uri = (
            options.tracking_uri
            or configured
            or f"sqlite:///{(self.state / 'mlflow.db').resolve()}"
        )
        self.artifact_location = artifacts_at
        self.facts = RunFacts(
            ir,
            self.pipeline,
            project_dir=options.project_dir,
            state=self.state,
            run_id=self.run_id,
            spec_hash=self.spec_hash,
            tracking_uri=self.tracking_uri,
            secrets=secrets,
            artifact_location=self.artifact_location,
        )
        self.started = time.time()
        self._functions: dict[StepKind, StepFunction] = {}
        self._needed: set[str] = set()
        """With `--only`: the steps whose results it reads (they must be cached)."""
        self._incumbents: dict[str, dict[str, Any]] = {}
        """Gate step id -> the registry's champion when it is this run's candidate model."""
        self._forced = self._select()

    # -- selection -------------------------------------------------------------------------

    def _select(self) -> set[str]:
        """Step ids that must execute whatever the cache holds."""
        ids = {s.id for s in self.pipeline}
        opts = self.options
        if opts.from_step and opts.only:
            raise RunError("use either --from or --only, not both")
        for name in (opts.from_step, opts.only):
            if name is not None and name not in ids:
                import difflib

                close = difflib.get_close_matches(name, sorted(ids), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise RunError(f"no pipeline step '{name}'{hint} (steps: {', '.join(sorted(ids))})")
        if not opts.use_cache:
            return set(ids)
        if opts.from_step:
            return {opts.from_step} | {s.id for s in self.ir.descendants(opts.from_step)}
        if opts.only:
            self._needed = self._inputs_of(opts.only)
            return {opts.only}
        return set()

    def _inputs_of(self, step_id: str) -> set[str]:
        """Steps `step_id` reads from, directly or not, counting the gates its `when` names."""
        pending, seen = [step_id], set[str]()
        while pending:
            current = pending.pop()
            step = self.ir.step(current)
            ups = {str(a.id) for a in self.ir.ancestors(current)}
            if step.when:
                ups.add(parse_when(step.when))
            for up in ups - seen:
                seen.add(up)
                pending.append(up)
        return seen & {str(s.id) for s in self.pipeline}

    # -- helpers ---------------------------------------------------------------------------

    def _function(self, kind: StepKind) -> StepFunction:
        fn = self._functions.get(kind)
        if fn is not None:
            return fn
        if self.steps_impl is not None:
            found = self.steps_impl.get(kind.value)
            if found is None:
                raise RunError(f"no implementation for step kind '{kind.value}'")
        else:
            from mlc.runtime.steps import get

            found = get(kind.value)
        self._functions[kind] = found
        return found

    def _champion(self, step: Step) -> dict[str, Any] | None:
        """The registry's champion, unless it is the model this run just trained."""
        if step.kind is not StepKind.GATE or not step.params.get("champion"):
            return None
        from mlc.runtime.steps.register import champion_info

        info = champion_info(str(step.params.get("model_name") or self.ir.name), self.tracking_uri)
        if info is None:
            return None
        if info.get("model_hash") in self.facts.model_hashes.values():
            # Comparing the candidate with itself proves nothing, and leaving it out of the
            # key keeps a rerun of unchanged inputs a cache hit; the table still names it.
            self._incumbents[step.id] = dict(info)
            return None
        return dict(info)

    def _impl(self, kind: StepKind) -> str:
        """Implementation version without importing the step (imports cost seconds)."""
        if self.steps_impl is not None:
            return implementation_version(self._function(kind))
        cached = IMPL_BY_KIND.get(kind.value)
        if cached is None:
            from mlc.runtime.steps import STEPS

            cached = module_version(STEPS.module(kind.value))
            IMPL_BY_KIND[kind.value] = cached
        return cached

    def _key(self, step: Step, champion: dict[str, Any] | None) -> str:
        hashes = self.facts.hashes
        body: dict[str, Any] = {
            "layout": CACHE_LAYOUT,
            "kind": step.kind.value,
            "impl": self._impl(step.kind),
            "params": step.params,
            "inputs": {n: hashes[a] for n, a in sorted(step.inputs.items())},
            "outputs": sorted(step.outputs),
        }
        fingerprint = source_fingerprint(step, self.options.project_dir)
        if fingerprint is not None:
            body["source"] = fingerprint
        if self.secrets_digest:
            body["secrets"] = self.secrets_digest
        if champion is not None:
            body["champion"] = {
                "metrics": champion.get("metrics"),
                "version": champion.get("version"),
            }
        if not step.cache:
            body["tracking_uri"] = self.tracking_uri
        return digest(body)

    def _skip_reason(self, step: Step) -> str | None:
        if step.when:
            verdict = self.facts.verdicts.get(parse_when(step.when))
            if verdict is None:
                return f"condition '{step.when}' has no verdict"
            if not verdict.get("passed"):
                return f"skipped: {step.when} is false"
        for name, art in step.inputs.items():
            if art not in self.facts.locations:
                return f"skipped: input '{name}' ({art}) was not produced"
        return None

    def _lineage(
        self,
        event_type: str,
        step: Step,
        inputs: dict[str, str | None],
        outputs: dict[str, str | None],
    ) -> None:
        self.events.write(
            self._event_lines.line(event_type, step.id, inputs, outputs),
            # START goes out with the step's COMPLETE or FAIL: one write per step.
            flush=event_type != "START",
        )

    # -- one step --------------------------------------------------------------------------

    def _run_step(self, step: Step) -> StepOutcome:
        reason = self._skip_reason(step)
        if reason is not None:
            return StepOutcome(step.id, step.kind.value, "skipped", message=reason)
        champion = self._champion(step)
        key = self._key(step, champion)
        forced = step.id in self._forced
        status = "ran"
        assert self.index is not None
        record = self.index.get(key)
        problem = check_files(self._cache, key, record, step.outputs) if record else ""
        if record is not None and not problem and not forced:
            return StepOutcome(
                step.id,
                step.kind.value,
                "cached",
                key=key,
                outputs={n: output_dir(self._cache, key, n) for n in step.outputs},
                hashes=dict(record["outputs"]),
                summary=record.get("summary"),
            )
        if record is not None:  # corrupt, or forced to run again
            if problem:
                self.progress.note(
                    f"warning: cache entry of step '{step.id}' is corrupt ({problem}); "
                    "recomputing it"
                )
                status = "recomputed"
            self.index.drop(key, step.outputs)
        elif self.options.only and not forced:
            only = self.options.only
            if step.id in self._needed:
                raise RunError(
                    f"--only {only} reads the results of step '{step.id}', which has no "
                    f"cached result for the current inputs; run it first: mlc run <spec> "
                    f"--from {step.id} (or the whole pipeline without --only)"
                )
            # A step downstream of (or beside) the selected one: --only does not run it.
            return StepOutcome(
                step.id,
                step.kind.value,
                "skipped",
                message=f"not run: --only {only} (no cached result for the current inputs)",
            )
        return self._execute(step, self._function(step.kind), key, champion, status)

    @staticmethod
    def _fresh_outputs(outputs: Mapping[str, str]) -> None:
        """One empty folder per output (the step writes into them); leftovers are cleared."""
        for loc in outputs.values():
            try:
                os.mkdir(loc)
            except FileExistsError:
                # Left by a killed run or a failed attempt: no index line vouches for it.
                shutil.rmtree(loc)
                os.mkdir(loc)

    def _execute(
        self, step: Step, fn: StepFunction, key: str, champion: dict[str, Any] | None, status: str
    ) -> StepOutcome:
        assert self.index is not None
        outputs = {name: output_dir(self._cache, key, name) for name in step.outputs}
        self._fresh_outputs(outputs)
        locations, known = self.facts.locations, self.facts.hashes
        inputs = {name: locations[art] for name, art in step.inputs.items()}
        in_hashes: dict[str, str | None] = {
            str(art): known.get(art) for art in step.inputs.values()
        }
        self._lineage("START", step, in_hashes, {a: None for a in step.outputs.values()})
        ctx = self.facts.context(step, champion)
        if self.options.reason is not None and step.kind is StepKind.REGISTER:
            ctx.extra["reason"] = self.options.reason
        t0, c0 = time.perf_counter(), time.process_time()
        attempts = step.retries + 1
        try:
            for attempt in range(attempts):
                try:
                    with self.progress.running(step):
                        summary = fn(dict(step.params), inputs, dict(outputs), ctx)
                    break
                except StepError:
                    raise
                except Exception:
                    if attempt + 1 >= attempts:
                        raise
                    self.progress.note(
                        f"step '{step.id}' failed (attempt {attempt + 1} of {attempts}); retrying"
                    )
                    self._fresh_outputs(outputs)
            files, hashes = hash_outputs(outputs)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            record = {
                "key": key,
                "step_id": step.id,
                "kind": step.kind.value,
                "outputs": hashes,
                "files": files,
                "summary": summary,
                "seconds": round(seconds, 4),
            }
            # The index line goes in last: folders without one are leftovers, whatever they hold.
            self.index.add(record)
        except BaseException as exc:
            for loc in outputs.values():
                shutil.rmtree(loc, ignore_errors=True)
            self._lineage("FAIL", step, in_hashes, {})
            if isinstance(exc, Exception):
                return StepOutcome(
                    step.id,
                    step.kind.value,
                    "failed",
                    key=key,
                    seconds=time.perf_counter() - t0,
                    cpu_seconds=time.process_time() - c0,
                    message=_describe_failure(step, exc),
                )
            raise
        # What the step wrote, in the chain: `mlc audit verify --deep` re-hashes the entry.
        self._audit(
            "step.outputs",
            {"run_id": self.run_id, "step": step.id, "kind": step.kind.value, "key": key}
            | {"outputs": hashes, "files": files},
            sync=False,
        )
        self._lineage("COMPLETE", step, in_hashes, {step.outputs[n]: h for n, h in hashes.items()})
        return StepOutcome(
            step.id,
            step.kind.value,
            status,
            seconds=seconds,
            cpu_seconds=cpu,
            key=key,
            outputs=dict(outputs),
            hashes=hashes,
            summary=summary,
        )

    # -- the whole run ---------------------------------------------------------------------

    def _clear_leftovers(self, index: CacheIndex) -> None:
        """Remove what killed runs left (one listing): output folders no index line vouches
        for, layout-1 temp folders and an index rewrite cut short."""
        live = index.live_folders()
        with os.scandir(self.cache) as it:
            entries = list(it)
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                if e.name not in live and (
                    e.name.startswith((".tmp-", ".old-")) or _is_output(e.name)
                ):
                    shutil.rmtree(e.path, ignore_errors=True)
            elif e.name.startswith(f"{INDEX_FILE}.tmp-"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(e.path)

    def run(self) -> RunResult:
        from mlc.runtime import audit

        with run_lock(self.state):
            self.cache.mkdir(parents=True, exist_ok=True)
            self.index = index = CacheIndex(self._cache)
            index.compact()
            self._clear_leftovers(index)
            self._recover()
            self.facts.commit = audit.git_commit(self.options.project_dir)
            try:
                self._audit(
                    "run.start",
                    {
                        "run_id": self.run_id,
                        "pipeline": self.ir.name,
                        "no_cache": not self.options.use_cache,
                        "from": self.options.from_step,
                        "only": self.options.only,
                    },
                )
            except audit.AuditKeyMissing as exc:
                raise RunError(str(exc)) from None
            result = RunResult(self.run_id, self.ir.name, "running", [])
            self._write_record(result)
            try:
                self._walk(result)
            except KeyboardInterrupt:
                result.status = "interrupted"
                raise
            except RunError as exc:
                result.status, result.error = "failed", str(exc)
                raise
            finally:
                result.seconds = time.time() - self.started
                if result.status == "running":
                    result.status = "interrupted"
                self.events.close()
                index.close()
                self._finish(result)
        return result

    def _recover(self) -> None:
        """What killed runs left outside the cache: run records still `running`, a
        half-built MLflow store, MLflow runs still `RUNNING` (see `mlc.runtime.store`)."""
        close_interrupted(self.state, self.run_id)
        try:
            store.prepare(self.tracking_uri, self.progress.note)
            store.close_killed_runs(
                self.tracking_uri,
                current_run=self.run_id,
                ended=has_ended(self.state, self.run_id),
                log=self.progress.note,
            )
        except store.StoreError as exc:
            raise RunError(str(exc)) from None

    def _walk(self, result: RunResult) -> None:
        total = len(self.pipeline)
        failed = False
        for index, step in enumerate(self.pipeline, start=1):
            if failed:
                outcome = StepOutcome(
                    step.id, step.kind.value, "not_run", message="an earlier step failed"
                )
            else:
                outcome = self._run_step(step)
            self.outcomes[step.id] = outcome
            result.steps.append(outcome)
            if outcome.status == "not_run":
                continue
            self.progress.step(outcome, index, total)
            if outcome.status == "failed":
                failed = True
                result.error = outcome.message
                continue
            for name, art in step.outputs.items():
                if name in outcome.outputs:
                    self.facts.record(art, outcome.outputs[name], outcome.hashes[name])
            if step.kind is StepKind.GATE and "verdict" in outcome.outputs:
                verdict = read_verdict(outcome.outputs["verdict"])
                self.facts.verdicts[step.id] = verdict
                self._audit(
                    "gate.verdict",
                    {
                        "run_id": self.run_id,
                        "step": step.id,
                        "passed": bool(verdict.get("passed")),
                        "cached": outcome.status == "cached",
                        "checks": verdict.get("checks", []),
                    },
                )
        verdicts = self.facts.verdicts
        if failed:
            result.status = "failed"
        elif any(not v.get("passed") for v in verdicts.values()):
            result.status = "gate_failed"
        else:
            result.status = "succeeded"
        result.verdicts = {
            gate: with_incumbent(v, self._incumbents[gate]) if gate in self._incumbents else v
            for gate, v in verdicts.items()
        }

    def _audit(self, event: str, details: dict[str, Any], *, sync: bool = True) -> None:
        from mlc.runtime import audit

        audit.append(
            self.state,
            event,
            spec_hash=self.spec_hash,
            commit=self.facts.commit,
            details=details,
            key_name=self.audit_key,
            sync=sync,
        )

    def _write_record(self, result: RunResult) -> None:
        result.record_path = write_record(
            self.state,
            result,
            options=self.options,
            started=self.started,
            spec_hash=self.spec_hash,
            commit=self.facts.commit,
            tracking_uri=self.tracking_uri,
            budgets=self.ir.settings.get("budgets") or {},
            pid=os.getpid(),
        )

    def _finish(self, result: RunResult) -> None:
        self._write_record(result)
        self._audit(
            "run.end",
            {
                "run_id": self.run_id,
                "status": result.status,
                "executed": result.executed,
                "cached": result.cache_hits,
                "seconds": round(result.seconds, 3),
            },
        )
        if "mlflow" in sys.modules:
            # Loading MLflow costs seconds, so only a run that has it moves the tracking
            # store's head to its end; the checkpoint covers the rest.
            from mlc.runtime import audit_anchor

            try:
                audit_anchor.refresh(self.state)
            except Exception as exc:
                self.progress.note(f"warning: the tracking store's audit head was not moved: {exc}")


def _is_output(name: str) -> bool:
    """`<64 hex>.<output>`: an output folder of the cache layout."""
    key, dot, output = name.partition(".")
    return bool(dot and output) and len(key) == 64 and not key.strip("0123456789abcdef")


def _describe_failure(step: Step, exc: Exception) -> str:
    if isinstance(exc, BudgetExceeded):
        return f"budget reached: {exc}"
    if isinstance(exc, StepError):
        return str(exc)
    if os.environ.get("MLC_DEBUG"):
        traceback.print_exception(exc)
    return (
        f"step '{step.id}' ({step.kind.value}) raised {type(exc).__name__}: {exc}"
        "\n  hint: set MLC_DEBUG=1 to see where it happened"
    )


def execute(
    ir: IRGraph, options: RunOptions, steps: Mapping[str, StepFunction] | None = None
) -> RunResult:
    """Run the pipeline steps of `ir` in dependency order (see the module docstring).

    Args:
        ir: the compiled IR; only its pipeline-layer steps run.
        options: project folder, cache use, step selection, tracking URI.
        steps: kind -> run function; default `mlc.runtime.steps` (tests and benchmarks pass
            their own).

    Returns:
        The run's result: status, one outcome per step, gate verdicts.

    Raises:
        RunError: the run could not start or a selection was invalid.
    """
    return Executor(ir, options, steps).run()


__all__ = [
    "RunError",
    "RunOptions",
    "RunResult",
    "StepFunction",
    "StepOutcome",
    "execute",
    "list_runs",
]
