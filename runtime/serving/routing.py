"""Choosing the track that answers a request: weighted, seeded, sticky by key when asked."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Mapping

from mlc.runtime.serving.guards import Rejection


class Router:
    """Weighted choice between tracks; weights change at run time (`set_weights`)."""

    def __init__(self, weights: Mapping[str, float], seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._weights: dict[str, float] = {}
        self.set_weights(weights)

    @property
    def weights(self) -> dict[str, float]:
        with self._lock:
            return dict(self._weights)

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Replace every weight at once; they must name known tracks and sum to 100."""
        known = set(self._weights) or set(weights)
        unknown = sorted(set(weights) - known)
        if unknown:
            raise Rejection(
                422,
                f"unknown track(s): {', '.join(unknown)}; tracks: {', '.join(sorted(known))}",
                "weights",
            )
        if set(weights) != known:
            raise Rejection(
                422, "weights must name every track: " + ", ".join(sorted(known)), "weights"
            )
        for name, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 100:
                raise Rejection(422, f"weight of '{name}' must be 0..100, got {w!r}", "weights")
        total = sum(float(w) for w in weights.values())
        if abs(total - 100.0) > 1e-6:
            raise Rejection(422, f"weights sum to {total:g}, not 100", "weights")
        with self._lock:
            self._weights = {name: float(weights[name]) for name in sorted(known)}

    def _pick(self, point: float) -> str:
        """The track whose cumulative weight interval holds `point` in [0, 100)."""
        with self._lock:
            items = list(self._weights.items())
        edge = 0.0
        for name, w in items:
            edge += w
            if w > 0 and point < edge:
                return name
        return next(name for name, w in reversed(items) if w > 0)

    def choose(self, key: str | None = None) -> str:
        """A track: by a hash of `key` when given (the same key, the same track while the
        weights stay), else by the seeded RNG."""
        if key is not None:
            digest = hashlib.sha256(key.encode("utf-8")).digest()
            point = int.from_bytes(digest[:8], "big") / 2**64 * 100.0
        else:
            with self._lock:
                point = self._rng.random() * 100.0
        return self._pick(point)

    def draw(self) -> float:
        """A uniform number in [0, 1) from the same seeded RNG (sampling, shadow share)."""
        with self._lock:
            return self._rng.random()
