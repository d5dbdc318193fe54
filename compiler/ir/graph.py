"""`IRGraph`: the typed graph of steps and artifacts, wrapping a networkx `DiGraph`.

Edges run step -> artifact -> step; the queries targets need are methods here so that no target
touches networkx directly.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mlc.compiler.ir.model import (
    IR_VERSION,
    Artifact,
    ArtifactId,
    ArtifactType,
    IRError,
    Layer,
    Step,
    StepId,
    StepKind,
)

if TYPE_CHECKING:
    import networkx as nx


class IRGraph:
    """Steps and artifacts with metadata; immutable once built by `IRBuilder`."""

    def __init__(
        self,
        name: str,
        metadata: dict[str, Any],
        settings: dict[str, Any],
        steps: Iterable[Step],
        artifacts: Iterable[Artifact],
    ) -> None:
        self.name = name
        self.metadata = metadata
        self.settings = settings
        self._steps: dict[StepId, Step] = {}
        self._artifacts: dict[ArtifactId, Artifact] = {}
        # Plain adjacency (node -> successors in insertion order) serves the queries every
        # compile makes; networkx is imported only for the rarer ones (see `_g`), since importing
        # it costs more than a whole `mlc validate`.
        self._succ: dict[str, dict[str, None]] = {}
        self._nx: nx.DiGraph[str] | None = None
        for step in steps:
            if step.id in self._steps:
                raise IRError(f"duplicate step id {step.id!r}")
            self._steps[step.id] = step
            self._succ.setdefault(step.id, {})
        for artifact in artifacts:
            if artifact.id in self._artifacts or str(artifact.id) in self._succ:
                raise IRError(f"duplicate artifact id {artifact.id!r}")
            self._artifacts[artifact.id] = artifact
            self._succ.setdefault(artifact.id, {})
            self._edge(artifact.producer, artifact.id)
        for step in self._steps.values():
            for art in step.inputs.values():
                self._edge(art, step.id)

    def _edge(self, source: str, dest: str) -> None:
        self._succ.setdefault(source, {})[dest] = None
        self._succ.setdefault(dest, {})

    @property
    def _g(self) -> nx.DiGraph[str]:
        """The same graph as a networkx `DiGraph`, built on first use."""
        if self._nx is None:
            import networkx as nx

            graph: nx.DiGraph[str] = nx.DiGraph()
            for node, succ in self._succ.items():
                graph.add_node(node, kind="step" if node in self._steps else "artifact")
                graph.add_edges_from((node, dest) for dest in succ)
            self._nx = graph
        return self._nx

    # -- queries -------------------------------------------------------------------------------

    @property
    def steps(self) -> list[Step]:
        """Steps in a deterministic topological order (ties broken by id)."""
        return [self._steps[StepId(n)] for n in self._topo() if n in self._steps]

    @property
    def artifacts(self) -> list[Artifact]:
        return [self._artifacts[a] for a in sorted(self._artifacts)]

    def step(self, step_id: str) -> Step:
        return self._steps[StepId(step_id)]

    def artifact(self, artifact_id: str) -> Artifact:
        return self._artifacts[ArtifactId(artifact_id)]

    def has_step(self, step_id: str) -> bool:
        return step_id in self._steps

    def has_artifact(self, artifact_id: str) -> bool:
        return artifact_id in self._artifacts

    def steps_of(self, *kinds: StepKind) -> list[Step]:
        return [s for s in self.steps if s.kind in kinds]

    def first(self, kind: StepKind) -> Step | None:
        found = self.steps_of(kind)
        return found[0] if found else None

    def layer(self, layer: Layer) -> list[Step]:
        return [s for s in self.steps if s.layer is layer]

    def upstream(self, step_id: str) -> list[Step]:
        """Steps whose outputs this step consumes directly."""
        producers = {
            self._artifacts[a].producer
            for a in self._steps[StepId(step_id)].inputs.values()
            if a in self._artifacts
        }
        return [self._steps[p] for p in sorted(producers)]

    def downstream(self, step_id: str) -> list[Step]:
        ids = {c for a in self._steps[StepId(step_id)].outputs.values() for c in self._succ[a]}
        return [self._steps[StepId(c)] for c in sorted(ids)]

    def ancestors(self, step_id: str) -> list[Step]:
        import networkx as nx

        return [
            self._steps[StepId(n)]
            for n in sorted(nx.ancestors(self._g, step_id))
            if n in self._steps
        ]

    def descendants(self, step_id: str) -> list[Step]:
        import networkx as nx

        return [
            self._steps[StepId(n)]
            for n in sorted(nx.descendants(self._g, step_id))
            if n in self._steps
        ]

    def consumers(self, artifact_id: str) -> list[Step]:
        return [self._steps[StepId(n)] for n in sorted(self._succ[artifact_id])]

    def artifacts_of(self, kind: ArtifactType) -> list[Artifact]:
        return [a for a in self.artifacts if a.type is kind]

    def find_cycle(self) -> list[str] | None:
        if self._topo_order() is not None:
            return None
        import networkx as nx

        try:
            cycle = nx.find_cycle(self._g)
        except nx.NetworkXNoCycle:
            return None
        return [str(u) for u, _ in cycle]

    def dangling_inputs(self) -> Iterator[tuple[Step, str, str]]:
        """(step, input name, artifact id) for inputs that no step produces."""
        for step in self.steps:
            for name, art in sorted(step.inputs.items()):
                if art not in self._artifacts:
                    yield step, name, art

    def unconsumed(self) -> list[Artifact]:
        return [a for a in self.artifacts if not self._succ[a.id]]

    def _topo(self) -> list[str]:
        order = self._topo_order()
        return order if order is not None else sorted(self._succ)

    def _topo_order(self) -> list[str] | None:
        """Kahn's algorithm taking the smallest ready id first (as networkx's lexicographical
        topological sort does); None when the graph has a cycle."""
        indegree = dict.fromkeys(self._succ, 0)
        for succ in self._succ.values():
            for dest in succ:
                indegree[dest] += 1
        ready = [node for node, degree in indegree.items() if degree == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for dest in self._succ[node]:
                indegree[dest] -= 1
                if indegree[dest] == 0:
                    heapq.heappush(ready, dest)
        return order if len(order) == len(self._succ) else None

    def __len__(self) -> int:
        return len(self._steps)

    # -- serialisation ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "ir_version": IR_VERSION,
            "name": self.name,
            "metadata": self.metadata,
            "settings": self.settings,
            "steps": [s.to_dict() for s in self.steps],
            "artifacts": [a.to_dict() for a in self.artifacts],
        }

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, two-space indent, a trailing newline."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IRGraph:
        if not isinstance(data, dict):
            raise IRError(f"an IR document is a JSON object, not {type(data).__name__}")
        version = str(data.get("ir_version", ""))
        if version.split(".")[0] != IR_VERSION.split(".")[0]:
            raise IRError(
                f"IR version {version or '(none)'} is not supported; this mlc reads {IR_VERSION}"
            )
        for key, kind in (("name", str), ("steps", list), ("artifacts", list)):
            if not isinstance(data.get(key), kind):
                raise IRError(f"IR field '{key}' must be a {kind.__name__}")
        from mlc.compiler.ir.params_check import check_params

        steps = [Step.from_dict(s, f"steps[{i}]") for i, s in enumerate(data["steps"])]
        for i, step in enumerate(steps):
            # each kind's params are a declared type (mlc.compiler.ir.params): a target reading
            # this IR may index them without checking
            check_params(step.kind, step.params, f"steps[{i}] {step.id!r}.params")
        return cls(
            name=data["name"],
            metadata=data.get("metadata", {}),
            settings=data.get("settings", {}),
            steps=steps,
            artifacts=[
                Artifact.from_dict(a, f"artifacts[{i}]") for i, a in enumerate(data["artifacts"])
            ],
        )

    @classmethod
    def from_json(cls, text: str) -> IRGraph:
        return cls.from_dict(json.loads(text))
