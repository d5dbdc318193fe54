"""Following the registry's aliases while serving: new versions load without a restart.

Every `reload_s` seconds the server resolves the aliases its tracks follow. A track pinned to a
version never moves. For a canary or blue-green plan:

- a new `challenger` (not the champion, not a version this server rolled back or failed to
  load) is loaded and warmed up off the request path, swapped into the candidate track, and
  the rollout starts again at its first step (judged automatically when the strategy bakes);
- `champion` naming another version (the rollout promoted it, or someone moved the alias) makes
  that version the stable track; when it is the candidate's, the loaded model is reused.

Any other track follows its alias the same way (swap after warm-up). A version that fails to
load leaves the server on what it serves; the failure is logged, kept in `status()`, and that
version is not tried again. Requests already routed keep the track object they were given, so
a swap fails none of them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlc.runtime.context import StepError

if TYPE_CHECKING:
    from mlc.runtime.serving.app import Service
    from mlc.runtime.serving.models import Track
    from mlc.runtime.serving.plan import TrackPlan

logger = logging.getLogger("mlc.serving.reload")


class Reloader:
    """Polls the registry for the service's aliases; see the module docstring."""

    def __init__(
        self,
        service: Service,
        interval_s: float,
        resolve: Callable[[str], str | None] | None = None,
    ) -> None:
        self.service = service
        self.interval_s = interval_s
        self._resolve = resolve or self._from_registry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed: dict[str, str] = {}
        self.loads = 0
        self.polls = 0
        self.last_error: str | None = None

    def _from_registry(self, alias: str) -> str | None:
        from mlc.runtime.steps.batch_predict import resolve_version

        plan = self.service.plan
        try:
            version, _ = resolve_version(plan["model_name"], alias, None, plan["tracking_uri"])
        except StepError:
            return None  # no such alias (yet): nothing to follow
        return version

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mlc-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # the store may be down for a while; keep serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("reload: %s", self.last_error)

    def status(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "polls": self.polls,
            "loads": self.loads,
            "failed": dict(self.failed),
            "last_error": self.last_error,
        }

    # -- one poll ----------------------------------------------------------------------------
    def _load(self, name: str, alias: str | None, version: str) -> Track | None:
        from mlc.runtime.serving.models import load_track

        if version in self.failed:
            return None
        spec: TrackPlan = {
            "name": name,
            "alias": alias,
            "version": version,
            "weight": 0.0,
            "onnx": None,
        }
        try:
            track = load_track(spec, self.service.plan)
        except StepError as exc:
            self.failed[version] = str(exc)
            logger.error("reload: version %s not loaded, still serving as before: %s", version, exc)
            return None
        self.loads += 1
        return track

    def poll(self) -> None:
        """Resolve the aliases once and act on what moved."""
        self.polls += 1
        service = self.service
        rollout = service.rollout
        pair = rollout.pair
        if pair is None:
            self._follow_each()
            return
        champion = self._resolve("champion")
        challenger = self._resolve("challenger")
        stable_v = rollout.versions[pair.stable]
        if champion is not None and champion != stable_v:
            candidate_track = service.tracks[pair.candidate]
            if candidate_track.version == champion:
                track: Track | None = dataclasses.replace(candidate_track, name=pair.stable)
            else:
                track = self._load(pair.stable, "champion", champion)
            if track is not None:
                service.swap(pair.stable, track)
                rollout.adopt_stable(champion)
        candidate_v = rollout.versions[pair.candidate]
        fresh = (
            challenger is not None
            and challenger != rollout.versions[pair.stable]
            and challenger != candidate_v
            and challenger not in rollout.rejected
            and challenger not in self.failed
        )
        if fresh and not rollout.active:
            assert challenger is not None
            track = self._load(pair.candidate, "challenger", challenger)
            if track is not None:
                service.swap(pair.candidate, track)
                rollout.start(challenger)

    def _follow_each(self) -> None:
        for spec in self.service.plan["tracks"]:
            alias = spec["alias"]
            if alias is None:
                continue  # pinned to a version
            version = self._resolve(alias)
            current = self.service.tracks[spec["name"]]
            if version is None or version == current.version:
                continue
            track = self._load(spec["name"], alias, version)
            if track is not None:
                self.service.swap(spec["name"], track)
                logger.warning(
                    "reload: track '%s' now serves v%s (alias '%s')", spec["name"], version, alias
                )
