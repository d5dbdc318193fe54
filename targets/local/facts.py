"""What a run knows so far: artifact locations and hashes, gate verdicts, the step context.

Kept incrementally as steps finish, so building a step's context costs the same at step 5 and
at step 500 (the data and model hashes a step sees are maps updated when an ingest or a model
output lands, not recomputed from the whole pipeline per step).
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any

from mlc.compiler.ir import ArtifactType, IRGraph, Step, StepKind
from mlc.runtime.context import StepContext
from mlc.targets.local.cache import digest


class RunFacts:
    """Locations, hashes and verdicts of one run, and the `StepContext` each step gets."""

    def __init__(
        self,
        ir: IRGraph,
        pipeline: list[Step],
        *,
        project_dir: Path,
        state: Path,
        run_id: str,
        spec_hash: str,
        tracking_uri: str,
        secrets: dict[str, str],
        artifact_location: str | None = None,
    ) -> None:
        self.ir = ir
        self.project_dir = project_dir
        self.state = state
        self.run_id = run_id
        self.spec_hash = spec_hash
        self.tracking_uri = tracking_uri
        self.artifact_location = artifact_location
        self.secrets = secrets
        self.commit: str | None = None
        self.locations: dict[str, str] = {}
        """Artifact id -> folder of its (cached or fresh) entry."""
        self.hashes: dict[str, str] = {}
        """Artifact id -> digest of its files (what downstream cache keys use)."""
        self.verdicts: dict[str, dict[str, Any]] = {}
        self._ingested = {
            a for s in pipeline if s.kind is StepKind.INGEST for a in s.outputs.values()
        }
        self._models = {a.id for a in ir.artifacts_of(ArtifactType.MODEL)}
        self.data_hashes: dict[str, str] = {}
        """Content hashes of the ingested datasets produced so far."""
        self.model_hashes: dict[str, str] = {}
        """Content hashes of the models produced so far."""
        self._data_hash: str | None = None

    def record(self, art: str, location: str, files_hash: str) -> None:
        """An artifact is available (produced now or taken from the cache)."""
        self.locations[art] = location
        self.hashes[art] = files_hash
        if art in self._ingested:
            self.data_hashes[art] = self._content_hash(art)
            hashes = self.data_hashes
            self._data_hash = next(iter(hashes.values())) if len(hashes) == 1 else digest(hashes)
        if art in self._models:
            self.model_hashes[art] = self._content_hash(art)

    def _content_hash(self, art: str) -> str:
        """The hash the producing step wrote in `_meta.json`, else the folder's digest."""
        try:
            with open(os.path.join(self.locations[art], "_meta.json"), "rb") as fh:
                meta = json.loads(fh.read())
            return str(meta["hash"])
        except (OSError, ValueError, KeyError):
            return self.hashes[art]

    @functools.cached_property
    def code_version(self) -> str:
        from mlc.targets.base import COMPILER_VERSION

        return f"mlc {COMPILER_VERSION}" + (f" @ {self.commit}" if self.commit else "")

    def context(self, step: Step, champion: dict[str, Any] | None) -> StepContext:
        """The `StepContext` of one step execution (deadline from the step's timeout)."""
        deadline = time.monotonic() + step.timeout_s if step.timeout_s else None
        extra: dict[str, Any] = {
            "run_id": self.run_id,
            "pipeline": self.ir.name,
            "spec_hash": self.spec_hash,
            "code_version": self.code_version,
            "git_commit": self.commit,
            "data_hashes": dict(self.data_hashes),
            "data_hash": self._data_hash,
            "model_hashes": dict(sorted(self.model_hashes.items())),
            "verdicts": dict(self.verdicts),
            "tracking_uri": self.tracking_uri,
            "artifact_location": self.artifact_location,
        }
        if champion is not None:
            extra["champion"] = champion
            extra["champion_metrics"] = champion.get("metrics")
        elif step.kind is StepKind.GATE:
            extra["champion_metrics"] = None
        return StepContext(
            project_dir=self.project_dir,
            state_dir=self.state,
            tracking_uri=self.tracking_uri,
            run_id=self.run_id,
            step_id=step.id,
            deadline=deadline,
            secrets=dict(self.secrets),
            extra=extra,
        )
