"""Where the tune step keeps its Optuna study, and how workers that share one study claim trials.

`tuning.storage` is a database URL (`postgresql://…`, `mysql://…`, `sqlite:///…`), Optuna's
journal file (`journal:///shared/study.log`, relative paths against the project folder), or a
secret reference to either (`env:OPTUNA_STORAGE`, resolved from the step's environment, which
the kfp target fills from a Kubernetes Secret). A password never leaves this module: every
place that shows the storage (errors, logs, the study report) shows it masked.

Workers sharing a study (KFP's `ParallelFor` runs one tune step per worker, all alike) must
neither run more trials than `tuning.trials` between them nor sample the same points. So, with a
shared storage: a trial's sampler is seeded from the spec's seed and the trial's number, which
the storage hands out once each (the points sampled no longer depend on which worker asked, or
when: with `sampler: random` a parallel study evaluates exactly the points of a sequential one);
and a worker asks for a trial only while the study holds fewer than `tuning.trials` live ones
(complete, pruned, running). Two workers that ask at the same moment can both see room for one
more: the later trial number is then told FAIL at once, marked `mlc.surplus`, never evaluated
and not counted as a failure.

A worker killed mid-trial (a preempted pod) would leave its trial RUNNING for ever, holding a
place no one fills. In a database storage every running trial records a heartbeat each
`HEARTBEAT_S`; a trial silent for `GRACE_S` is failed by the next worker that looks and its
point queued again once (Optuna's `RetryHeartbeatStaleTrialCallback`), and a worker with no
trial left to ask waits for the others' running trials instead of leaving, so the study ends
with its `tuning.trials` and the killed trial's point evaluated.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.runtime.context import StepError

if TYPE_CHECKING:
    from mlc.runtime.context import StepContext

SURPLUS = "mlc.surplus"
"""User attribute of a trial asked when the study already had its trials (never evaluated)."""

HEARTBEAT_S = 20
"""Seconds between the heartbeats of a running trial in a database storage."""
GRACE_S = 120
"""A running trial without a heartbeat for this long belongs to a killed worker."""
POLL_S = 0.5
"""How often a worker with nothing left to ask looks at the others' running trials."""

_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s]*)@")
_JOURNAL = "journal://"


def mask(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with the password of every URL in it, and each of `secrets`, replaced by `***`.

    >>> mask("postgresql+psycopg://optuna:s3cret@db:5432/optuna")
    'postgresql+psycopg://optuna:***@db:5432/optuna'
    >>> mask("failed for s3cret", ("s3cret",))
    'failed for ***'
    """
    out = _PASSWORD.sub(lambda m: f"{m.group('head')}***@", text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out


def _password(url: str) -> str:
    found = _PASSWORD.search(url)
    return found.group("password") if found else ""


@dataclass(frozen=True)
class Storage:
    """A resolved study storage."""

    storage: Any
    """What `optuna.create_study(storage=…)` takes: a URL or a storage object."""
    shown: str
    """How errors and reports name it (the secret reference and the URL, password masked)."""
    shared: bool
    """Named by the spec (other workers may share it), not the project's own sqlite file."""
    secrets: tuple[str, ...] = ()

    def masked(self, text: str) -> str:
        return mask(text, self.secrets)


def _rdb_url(url: str) -> str:
    # SQLAlchemy's bare `postgresql://` means psycopg2; mlc installs psycopg (3).
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare) :]
    return url


def resolve(value: str | None, ctx: StepContext, step: str) -> Storage:
    """The storage `tuning.storage` names (None: sqlite in the project's state folder).

    Raises:
        StepError: a secret reference that cannot be resolved here, or a value that is neither
            a database URL nor a journal file.
    """
    import optuna

    if not value:
        return Storage(f"sqlite:///{(ctx.state / 'optuna.db').resolve()}", "", False)
    from mlc.runtime.store import StoreError, configured_uri

    try:
        resolved = configured_uri(value, "tuning.storage") or ""
    except StoreError as exc:
        raise StepError(
            step,
            str(exc),
            "set the variable in the step's environment (on kfp: list it under "
            "security.secrets so the pod gets it from its Secret)",
        ) from exc
    secrets = tuple(s for s in (_password(resolved),) if s)
    via = f"{value} -> " if resolved != value else ""
    shown = via + mask(resolved, secrets)
    if resolved.startswith(_JOURNAL):
        raw = resolved[len(_JOURNAL) :]
        if not raw or raw == "/":
            raise StepError(
                step,
                f"tuning.storage {shown} names no journal file",
                "write 'journal:///shared/study.log' (absolute) or 'journal://.mlc/study.log'",
            )
        path = Path(raw) if raw.startswith("/") else ctx.project_dir / raw
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            from optuna.storages.journal import JournalFileBackend

            backend = JournalFileBackend(str(path))
        except OSError as exc:
            raise StepError(
                step,
                f"cannot open the Optuna journal {path} (tuning.storage {shown}): {exc}",
                "name a file on a file system every worker mounts, writable by the step",
            ) from exc
        return Storage(optuna.storages.JournalStorage(backend), shown, True, secrets)
    if "://" not in resolved:
        raise StepError(
            step,
            f"tuning.storage {shown} is neither a database URL nor a journal file",
            "write 'postgresql://user@host:5432/db' or 'journal:///shared/study.log'",
        )
    url = _rdb_url(resolved)
    try:
        rdb = _rdb(url)
    except Exception as exc:  # SQLAlchemy and the drivers raise many kinds
        raise StepError(
            step,
            f"cannot open the Optuna study storage {shown}: {mask(str(exc), secrets)}",
            "check that the database is reachable from the step and the credentials are "
            "right (PostgreSQL needs the psycopg driver, in mlc[ml])",
        ) from None
    return Storage(rdb, shown, True, secrets)


def _rdb_storage(url: str) -> Any:
    import optuna

    return optuna.storages.RDBStorage(
        url,
        engine_kwargs={"pool_pre_ping": True},
        heartbeat_interval=HEARTBEAT_S,
        grace_period=GRACE_S,
        heartbeat_stale_trial_callback=_retry_once(),
    )


def _retry_once() -> Any:
    import optuna

    with warnings.catch_warnings():  # experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)


def _rdb(url: str) -> Any:
    """Optuna's RDB storage; workers that start together race to create its tables (the loser
    sees "already exists"), so that error is retried: by then the tables are there."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats are experimental in Optuna 5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return _rdb_storage(url)
        except (IntegrityError, ProgrammingError) as exc:
            if "already exists" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _seed_of(seed: int, number: int) -> int:
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def trial_seeded(make: Callable[[int], Any], seed: int) -> Any:
    """A sampler that samples trial `n` with `make(seed derived from (seed, n))`.

    What a trial samples then depends on its number (and, for model-based samplers, the
    study's history), not on which worker asked for it or in which order the workers did.
    """
    from optuna.samplers import BaseSampler

    class TrialSeeded(BaseSampler):
        def __init__(self) -> None:
            self._by_trial: dict[int, Any] = {}

        def _for(self, trial: Any) -> Any:
            sampler = self._by_trial.get(trial.number)
            if sampler is None:
                sampler = self._by_trial[trial.number] = make(_seed_of(seed, trial.number))
            return sampler

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self._for(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            return self._for(trial).sample_relative(study, trial, search_space)

        def sample_independent(
            self, study: Any, trial: Any, param_name: str, param_distribution: Any
        ) -> Any:
            return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._for(trial).before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._for(trial).after_trial(study, trial, state, values)
            self._by_trial.pop(trial.number, None)

        def reseed_rng(self) -> None:
            # The seed of each trial is fixed by its number: nothing to reseed.
            return None

    return TrialSeeded()


def live_trials(study: Any, below: int | None = None) -> int:
    """Trials of `study` that count towards `tuning.trials` (all but failed ones), those
    numbered below `below` when given."""
    import optuna

    states = optuna.trial.TrialState
    alive = (states.COMPLETE, states.PRUNED, states.RUNNING, states.WAITING)
    return sum(
        t.state in alive and (below is None or t.number < below)
        for t in study.get_trials(deepcopy=False)
    )


@contextlib.contextmanager
def _heartbeat(study: Any, trial: Any) -> Any:
    """Record `trial`'s heartbeat now and every interval while the block runs (a storage
    without heartbeats, such as the journal, records none)."""
    storage = study._storage  # the storage the study was opened on; Optuna names it so too
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is None:
        yield
        return
    trial_id = trial._trial_id  # the storage's key of the trial (Optuna's own heartbeat uses it)
    storage.record_heartbeat(trial_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # a missed beat only brings staleness nearer
                storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name=f"mlc-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def optimize_shared(
    study: Any,
    objective: Callable[[Any], float],
    target: int,
    budget: float | None,
    parallelism: int,
    distributions: dict[str, Any],
    result: Any,
    give_up_after: int,
) -> None:
    """Run trials of a shared study until it holds `target` live trials; record in `result`.

    `result` is the tune step's run record (`asked`, `failures`, `gave_up`, `full`). Batches of
    `parallelism` run in threads, told in ask order, as in a study of one worker.
    """
    from concurrent.futures import ThreadPoolExecutor

    import optuna

    states = optuna.trial.TrialState
    started = time.monotonic()
    per_trial = max(1, (os.cpu_count() or 1) // parallelism)

    def limited(trial: Any) -> float:
        with _heartbeat(study, trial):
            if parallelism == 1:
                return float(objective(trial))
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=per_trial, user_api="openmp"):
                return float(objective(trial))

    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        while True:
            if budget is not None and time.monotonic() - started >= budget:
                return
            with warnings.catch_warnings():  # Optuna marks the heartbeat API experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # a killed worker's, queued again
            trials = study.get_trials(deepcopy=False)
            waiting = sum(t.state == states.WAITING for t in trials)
            room = target - live_trials(study) + waiting  # queued trials are there to ask
            if room <= 0:
                if not any(t.state == states.RUNNING for t in trials):
                    result.full = True
                    return
                # Others' trials are running: they finish, fail (a place frees), or go stale
                # (failed above and queued again). Leaving now would lose a killed one.
                time.sleep(POLL_S)
                continue
            batch = []
            for _ in range(min(parallelism, room)):
                with warnings.catch_warnings():
                    # the heartbeats of asked trials are this module's (see _heartbeat)
                    warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                    trial = study.ask(distributions)
                if live_trials(study, below=trial.number) >= target:
                    # Another worker took the last trial between the count and this ask.
                    trial.set_user_attr(SURPLUS, True)
                    study.tell(trial, state=states.FAIL)
                    result.full = True
                    break
                batch.append(trial)
            futures = [pool.submit(limited, trial) for trial in batch]
            for trial, future in zip(batch, futures, strict=True):
                try:
                    value = future.result()
                except optuna.TrialPruned:
                    study.tell(trial, state=states.PRUNED)
                    continue
                except Exception as exc:  # a trial's model, data or metric can raise anything
                    from mlc.runtime.steps.tune import _summarise

                    study.tell(trial, state=states.FAIL)
                    result.failures.append((trial.number, _summarise(exc)))
                    continue
                except BaseException:
                    study.tell(trial, state=states.FAIL)
                    for other in futures:
                        other.cancel()
                    raise
                study.tell(trial, value)
            result.asked += len(batch)
            if not batch:
                return
            complete = any(t.state == states.COMPLETE for t in study.get_trials(deepcopy=False))
            # Failed trials free their place: stop before failures alone fill the run.
            if (len(result.failures) >= give_up_after and not complete) or len(
                result.failures
            ) >= max(target, give_up_after):
                result.gave_up = True
                return
            if result.full:
                return
