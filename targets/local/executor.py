"""The local executor: runs the IR's pipeline steps in-process, cached, resumable and audited.

How a run proceeds (`execute`):

1. Take the project's run lock (`.mlc/run.lock`, released by the kernel even on `kill -9`) and
   clear temp folders a killed run left behind.
2. Walk the pipeline steps in the IR's topological order. Each step gets a cache key: sha256 of
   step kind, implementation version (the step module's `VERSION`, else a hash of its source),
   params, the content hashes of its inputs, the fingerprint of files it reads from outside (an
   ingest source) and, for the gate, the current champion's metrics.
3. A key with a complete, intact entry under `.mlc/cache/<key>/` is a hit. Otherwise the step
   writes into a temp folder that is renamed to the entry once the step returned and every
   output file was hashed into `_step.json`; a kill at any moment leaves either no entry or a
   complete one. An entry whose files no longer match `_step.json` is corrupt: it is reported,
   removed and recomputed.
4. Steps with `when: <gate>.passed` are skipped when that gate's verdict failed; the run then
   ends with status `gate_failed` (exit 3 in the CLI).
5. A run record (`.mlc/runs/<run id>.json`), OpenLineage events (`.mlc/lineage/events/`) and
   audit records (`run.start`, `gate.verdict`, `run.end`) are written as the run goes.

`cache: false` steps in the IR (register, model card) depend on the registry as well as their
inputs; here their key also covers the tracking URI, and the register step itself refuses to
create a second version of a model it already registered, so a rerun never duplicates one.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import secrets as pysecrets
import shutil
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from mlc.compiler.ir import PIPELINE_KINDS, ArtifactType, IRGraph, Step, StepKind
from mlc.compiler.output import write_file
from mlc.targets.local.cache import (
    CACHE_LAYOUT,
    IMPL_BY_KIND,
    STEP_FILE,
    digest,
    entry_ok,
    files_of,
    implementation_version,
    module_version,
    replace_dir,
    source_fingerprint,
)
from mlc.targets.local.progress import RUNS_DIR, Progress, list_runs

CACHE_DIR = "cache"

StepFunction = Callable[[dict[str, Any], dict[str, str], dict[str, str], Any], Any]


class RunError(Exception):
    """The run cannot start or go on for a reason the user can fix (message says which)."""


@dataclass
class RunOptions:
    """How to run: where the project lives, what to reuse, what to select."""

    project_dir: Path
    state_dir: Path | None = None
    """The project's `.mlc/` (default: `project_dir/.mlc`)."""
    tracking_uri: str | None = None
    use_cache: bool = True
    from_step: str | None = None
    """Re-execute this step and everything downstream; reuse the cache above it."""
    only: str | None = None
    """Execute only this step; its inputs must be in the cache."""
    run_id: str | None = None
    out: IO[str] | None = None
    """Where progress lines go (default stderr); None with `quiet` prints nothing."""
    quiet: bool = False

    def __post_init__(self) -> None:
        self.project_dir = Path(self.project_dir).resolve()
        if self.state_dir is None:
            self.state_dir = self.project_dir / ".mlc"
        self.state_dir = Path(self.state_dir).resolve()


@dataclass
class StepOutcome:
    step_id: str
    kind: str
    status: str
    """`ran`, `cached`, `recomputed` (corrupt entry), `skipped`, `failed` or `not_run`."""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    key: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    """Output name -> artifact folder."""
    hashes: dict[str, str] = field(default_factory=dict)
    """Output name -> content hash of the artifact folder."""
    summary: Any = None
    message: str = ""


@dataclass
class RunResult:
    run_id: str
    name: str
    status: str
    """`succeeded`, `gate_failed`, `failed` or `interrupted`."""
    steps: list[StepOutcome]
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Gate step id -> its verdict document."""
    error: str = ""
    record_path: Path | None = None
    seconds: float = 0.0

    @property
    def cache_hits(self) -> int:
        return sum(1 for s in self.steps if s.status == "cached")

    @property
    def executed(self) -> int:
        return sum(1 for s in self.steps if s.status in ("ran", "recomputed"))


# -- the run -------------------------------------------------------------------------------------


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + pysecrets.token_hex(3)


@contextlib.contextmanager
def _run_lock(state: Path) -> Iterator[None]:
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "run.lock", "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"another 'mlc run' is using {state}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_verdict(location: str) -> dict[str, Any]:
    """The verdict document of a gate output: `{"passed": bool, "checks": [...]}`."""
    folder = Path(location)
    candidates = [folder / "verdict.json", *sorted(folder.glob("*.json"))]
    for path in candidates:
        if path.name == "_meta.json" or not path.is_file():
            continue
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and "passed" in doc:
            return doc
    meta_path = folder / "_meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if "passed" in meta:
            return {"passed": bool(meta["passed"]), "checks": meta.get("checks", [])}
    raise RunError(f"the gate output at {location} carries no verdict ('passed')")


def _parse_when(when: str) -> tuple[str, str]:
    step_id, _, attr = when.rpartition(".")
    if not step_id or attr != "passed":
        raise RunError(f"unsupported condition 'when: {when}' (expected '<gate step>.passed')")
    return step_id, attr


class Executor:
    """One run of an IR's pipeline layer. Use `execute()`; this class holds the run's state."""

    def __init__(
        self, ir: IRGraph, options: RunOptions, steps: Mapping[str, StepFunction] | None = None
    ) -> None:
        self.ir = ir
        self.options = options
        self.state: Path = options.state_dir  # type: ignore[assignment]
        self.cache = self.state / CACHE_DIR
        self.steps_impl = steps
        self.run_id = options.run_id or _new_run_id()
        self.pipeline = [s for s in ir.steps if s.kind in PIPELINE_KINDS]
        self.outcomes: dict[str, StepOutcome] = {}
        self.locations: dict[str, str] = {}
        self.hashes: dict[str, str] = {}
        self.verdicts: dict[str, dict[str, Any]] = {}
        self._content_hashes: dict[str, str] = {}
        self._events: IO[str] | None = None
        self.progress = Progress(options)
        self.spec_hash = str(ir.metadata.get("spec_hash", ""))
        secret_names = (ir.settings.get("security") or {}).get("secrets") or {}
        self.secrets = {n: os.environ[n] for n in sorted(secret_names) if n in os.environ}
        self.secrets_digest = digest(self.secrets) if self.secrets else ""
        self.tracking_uri = (
            options.tracking_uri or f"sqlite:///{(self.state / 'mlflow.db').resolve()}"
        )
        self.commit: str | None = None
        self.started = time.time()
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
            return {opts.only}
        return set()

    # -- helpers ---------------------------------------------------------------------------

    def _function(self, kind: StepKind) -> StepFunction:
        if self.steps_impl is not None:
            fn = self.steps_impl.get(kind.value)
            if fn is None:
                raise RunError(f"no implementation for step kind '{kind.value}'")
            return fn
        from mlc.runtime.steps import get

        found: StepFunction = get(kind.value)
        return found

    def _context(self, step: Step) -> Any:
        from mlc.runtime.context import StepContext

        deadline = time.monotonic() + step.timeout_s if step.timeout_s else None
        extra = {
            "run_id": self.run_id,
            "pipeline": self.ir.name,
            "spec_hash": self.spec_hash,
            "code_version": self._code_version_text,
            "git_commit": self.commit,
            "data_hashes": self._data_hashes(),
            "model_hashes": self._hashes_of(ArtifactType.MODEL),
            "verdicts": dict(self.verdicts),
            "tracking_uri": self.tracking_uri,
        }
        hashes = self._data_hashes()
        extra["data_hash"] = (
            next(iter(hashes.values()))
            if len(hashes) == 1
            else (digest(hashes) if hashes else None)
        )
        return StepContext(
            project_dir=self.options.project_dir,
            state_dir=self.state,
            tracking_uri=self.tracking_uri,
            run_id=self.run_id,
            step_id=step.id,
            deadline=deadline,
            secrets=dict(self.secrets),
            extra=extra,
        )

    @functools.cached_property
    def _code_version_text(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            mlc_version = version("mlc")
        except PackageNotFoundError:
            mlc_version = "unknown"
        return f"mlc {mlc_version}" + (f" @ {self.commit}" if self.commit else "")

    def _hashes_of(self, atype: ArtifactType) -> dict[str, str]:
        return {
            a.id: self._content_hash(a.id)
            for a in self.ir.artifacts_of(atype)
            if a.id in self.locations
        }

    def _content_hash(self, art: str) -> str:
        """The hash the producing step wrote in `_meta.json`, else the folder's digest."""
        known = self._content_hashes.get(art)
        if known is None:
            known = self._content_hashes[art] = self._read_content_hash(art)
        return known

    def _read_content_hash(self, art: str) -> str:
        try:
            meta = json.loads((Path(self.locations[art]) / "_meta.json").read_text())
            return str(meta["hash"])
        except (OSError, ValueError, KeyError):
            return self.hashes[art]

    def _data_hashes(self) -> dict[str, str]:
        """Content hashes of the ingested datasets."""
        return {
            art: self._content_hash(art)
            for step in self.pipeline
            if step.kind is StepKind.INGEST
            for art in step.outputs.values()
            if art in self.locations
        }

    def _champion(self, step: Step) -> dict[str, Any] | None:
        """The registry's champion, unless it is the model this run just trained."""
        if step.kind is not StepKind.GATE or not step.params.get("champion"):
            return None
        from mlc.runtime.steps.register import champion_info

        info = champion_info(str(step.params.get("model_name") or self.ir.name), self.tracking_uri)
        if info is None or info.get("model_hash") in self._hashes_of(ArtifactType.MODEL).values():
            return None
        return dict(info)

    def _event(self, event: dict[str, Any]) -> None:
        """Append an OpenLineage event through one handle held for the whole run."""
        if self._events is None:
            from mlc.runtime.lineage import events_path

            path = events_path(self.state, self.run_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._events = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in run)
        self._events.write(json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n")
        self._events.flush()

    # -- one step --------------------------------------------------------------------------

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
        body: dict[str, Any] = {
            "layout": CACHE_LAYOUT,
            "kind": step.kind.value,
            "impl": self._impl(step.kind),
            "params": step.params,
            "inputs": {n: self.hashes[a] for n, a in sorted(step.inputs.items())},
            "outputs": sorted(step.outputs),
        }
        fingerprint = source_fingerprint(step, self.options.project_dir)
        if fingerprint is not None:
            body["source"] = fingerprint
        if self.secrets_digest:
            body["secrets"] = self.secrets_digest
        if champion is not None:
            body["champion"] = champion.get("metrics")
        if not step.cache:
            body["tracking_uri"] = self.tracking_uri
        return digest(body)

    def _skip_reason(self, step: Step) -> str | None:
        if step.when:
            gate_id, _ = _parse_when(step.when)
            verdict = self.verdicts.get(gate_id)
            if verdict is None:
                return f"condition '{step.when}' has no verdict"
            if not verdict.get("passed"):
                return f"skipped: {step.when} is false"
        for name, art in step.inputs.items():
            if art not in self.locations:
                return f"skipped: input '{name}' ({art}) was not produced"
        return None

    def _run_step(self, step: Step, index: int, total: int) -> StepOutcome:
        reason = self._skip_reason(step)
        if reason is not None:
            return StepOutcome(step.id, step.kind.value, "skipped", message=reason)
        champion = self._champion(step)
        key = self._key(step, champion)
        entry = self.cache / key
        forced = step.id in self._forced
        status = "ran"
        if entry.exists():
            problem = entry_ok(entry, step.outputs)
            if problem is None and not forced:
                record = json.loads((entry / STEP_FILE).read_text())
                return StepOutcome(
                    step.id,
                    step.kind.value,
                    "cached",
                    key=key,
                    outputs={n: str(entry / n) for n in step.outputs},
                    hashes=dict(record["outputs"]),
                    summary=record.get("summary"),
                )
            if problem is not None:
                self.progress.note(
                    f"warning: cache entry of step '{step.id}' is corrupt "
                    f"({problem}); recomputing it"
                )
                shutil.rmtree(entry, ignore_errors=True)
                status = "recomputed"
        elif self.options.only and not forced:
            raise RunError(
                f"step '{step.id}' has no cached result for --only "
                f"{self.options.only}; run the pipeline once without --only"
            )
        return self._execute(step, self._function(step.kind), key, champion, status)

    def _execute(
        self, step: Step, fn: StepFunction, key: str, champion: dict[str, Any] | None, status: str
    ) -> StepOutcome:
        from mlc.runtime import lineage
        from mlc.runtime.context import StepError

        self.cache.mkdir(parents=True, exist_ok=True)
        # Unique to this key and process; leftovers of killed runs are cleared at run start.
        tmp = self.cache / f".tmp-{key[:16]}-{os.getpid()}"
        outputs = {name: str(tmp / name) for name in step.outputs}
        for loc in outputs.values():
            Path(loc).mkdir(parents=True)
        inputs = {name: self.locations[art] for name, art in step.inputs.items()}
        in_hashes: dict[str, str | None] = {
            str(art): self.hashes.get(art) for art in step.inputs.values()
        }
        self._event(
            lineage.run_event(
                "START",
                pipeline=self.ir.name,
                run_id=self.run_id,
                step_id=step.id,
                inputs=in_hashes,
                outputs={a: None for a in step.outputs.values()},
            ),
        )
        ctx = self._context(step)
        if champion is not None:
            ctx.extra["champion"] = champion
            ctx.extra["champion_metrics"] = champion.get("metrics")
        elif step.kind is StepKind.GATE:
            ctx.extra["champion_metrics"] = None
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
                    shutil.rmtree(tmp, ignore_errors=True)
                    for loc in outputs.values():
                        Path(loc).mkdir(parents=True)
            files = files_of(tmp)
            hashes = {
                name: digest({p: h for p, h in files.items() if p.startswith(name + "/")})
                for name in step.outputs
            }
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
            (tmp / STEP_FILE).write_text(json.dumps(record, sort_keys=True, default=str))
            replace_dir(tmp, self.cache / key)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            self._event(
                lineage.run_event(
                    "FAIL",
                    pipeline=self.ir.name,
                    run_id=self.run_id,
                    step_id=step.id,
                    inputs=in_hashes,
                    outputs={},
                ),
            )
            if isinstance(exc, Exception):
                outcome = StepOutcome(
                    step.id,
                    step.kind.value,
                    "failed",
                    key=key,
                    seconds=time.perf_counter() - t0,
                    cpu_seconds=time.process_time() - c0,
                    message=_describe_failure(step, exc),
                )
                return outcome
            raise
        self._event(
            lineage.run_event(
                "COMPLETE",
                pipeline=self.ir.name,
                run_id=self.run_id,
                step_id=step.id,
                inputs=in_hashes,
                outputs={step.outputs[n]: h for n, h in hashes.items()},
            ),
        )
        entry = self.cache / key
        return StepOutcome(
            step.id,
            step.kind.value,
            status,
            seconds=seconds,
            cpu_seconds=cpu,
            key=key,
            outputs={n: str(entry / n) for n in step.outputs},
            hashes=hashes,
            summary=summary,
        )

    # -- the whole run ---------------------------------------------------------------------

    def run(self) -> RunResult:
        from mlc.runtime import audit

        with _run_lock(self.state):
            for stale in self.cache.glob(".tmp-*") if self.cache.exists() else []:
                shutil.rmtree(stale, ignore_errors=True)
            for stale in self.cache.glob(".old-*") if self.cache.exists() else []:
                shutil.rmtree(stale, ignore_errors=True)
            self.commit = audit.git_commit(self.options.project_dir)
            audit.append(
                self.state,
                "run.start",
                spec_hash=self.spec_hash,
                commit=self.commit,
                details={
                    "run_id": self.run_id,
                    "pipeline": self.ir.name,
                    "no_cache": not self.options.use_cache,
                    "from": self.options.from_step,
                    "only": self.options.only,
                },
            )
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
                if self._events is not None:
                    self._events.close()
                self._finish(result)
        return result

    def _walk(self, result: RunResult) -> None:
        from mlc.runtime import audit

        total = len(self.pipeline)
        failed = False
        for index, step in enumerate(self.pipeline, start=1):
            if failed:
                outcome = StepOutcome(
                    step.id, step.kind.value, "not_run", message="an earlier step failed"
                )
            else:
                outcome = self._run_step(step, index, total)
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
                    self.locations[art] = outcome.outputs[name]
                    self.hashes[art] = outcome.hashes[name]
            if step.kind is StepKind.GATE and "verdict" in outcome.outputs:
                verdict = _read_verdict(outcome.outputs["verdict"])
                self.verdicts[step.id] = verdict
                audit.append(
                    self.state,
                    "gate.verdict",
                    spec_hash=self.spec_hash,
                    commit=self.commit,
                    details={
                        "run_id": self.run_id,
                        "step": step.id,
                        "passed": bool(verdict.get("passed")),
                        "cached": outcome.status == "cached",
                        "checks": verdict.get("checks", []),
                    },
                )
        if failed:
            result.status = "failed"
        elif any(not v.get("passed") for v in self.verdicts.values()):
            result.status = "gate_failed"
        else:
            result.status = "succeeded"
        result.verdicts = dict(self.verdicts)

    def _spent(self, result: RunResult) -> dict[str, Any]:
        by_kind: dict[str, float] = {}
        for s in result.steps:
            by_kind[s.kind] = by_kind.get(s.kind, 0.0) + s.seconds
        return {
            "wall_seconds": round(result.seconds, 3),
            "step_seconds": {k: round(v, 3) for k, v in sorted(by_kind.items())},
            "cpu_seconds": round(sum(s.cpu_seconds for s in result.steps), 3),
            "training_seconds": round(by_kind.get("train", 0.0), 3),
            "tuning_seconds": round(by_kind.get("tune", 0.0), 3),
            # Local runs use the machine at hand: no cloud spend to count against the caps.
            "usd": 0.0,
        }

    def _write_record(self, result: RunResult) -> None:
        runs = self.state / RUNS_DIR
        path = runs / f"{self.run_id}.json"
        body = {
            "run_id": self.run_id,
            "name": self.ir.name,
            "status": result.status,
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "project_dir": str(self.options.project_dir),
            "spec_hash": self.spec_hash,
            "git_commit": self.commit,
            "tracking_uri": self.tracking_uri,
            "options": {
                "use_cache": self.options.use_cache,
                "from": self.options.from_step,
                "only": self.options.only,
            },
            "steps": [asdict(s) for s in result.steps],
            "verdicts": result.verdicts,
            "error": result.error,
            "budgets": {
                "caps": self.ir.settings.get("budgets") or {},
                "spent": self._spent(result),
            },
        }
        write_file(path, json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
        result.record_path = path

    def _finish(self, result: RunResult) -> None:
        from mlc.runtime import audit

        self._write_record(result)
        audit.append(
            self.state,
            "run.end",
            spec_hash=self.spec_hash,
            commit=self.commit,
            details={
                "run_id": self.run_id,
                "status": result.status,
                "executed": result.executed,
                "cached": result.cache_hits,
                "seconds": round(result.seconds, 3),
            },
        )


def _describe_failure(step: Step, exc: Exception) -> str:
    from mlc.runtime.context import BudgetExceeded, StepError

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


__all__ = ["RunError", "RunOptions", "RunResult", "StepOutcome", "execute", "list_runs"]
