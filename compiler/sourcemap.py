"""Source maps: every key path of a spec mapped to the `file:line:col` that set it.

OmegaConf keeps no positions, so positions are taken from PyYAML's node tree before any merge;
merging then carries the map along, so a value set by an overlay points at the overlay.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mlc.compiler.diagnostics import SourceLocation

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Span:
    """Where a key was written (`key`) and where its value starts (`value`)."""

    key: SourceLocation | None
    value: SourceLocation


class SourceMap:
    """Key path -> Span, with lookups that fall back to the nearest located ancestor."""

    def __init__(self, spans: dict[KeyPath, Span] | None = None) -> None:
        self._spans: dict[KeyPath, Span] = dict(spans or {})

    def __contains__(self, path: KeyPath) -> bool:
        return path in self._spans

    def __iter__(self) -> Iterator[KeyPath]:
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def set(self, path: KeyPath, span: Span) -> None:
        self._spans[path] = span

    def span(self, path: KeyPath) -> Span | None:
        return self._spans.get(path)

    def drop_subtree(self, path: KeyPath) -> None:
        """Forget everything below `path` but keep `path` (its value was replaced whole)."""
        n = len(path)
        for key in [k for k in self._spans if k[:n] == path and len(k) > n]:
            del self._spans[key]

    def drop(self, path: KeyPath) -> None:
        """Forget `path` itself and everything below it (a deleted key)."""
        self._spans.pop(tuple(path), None)
        self.drop_subtree(path)

    def locate(self, path: KeyPath, *, at_key: bool = False) -> SourceLocation | None:
        """Location of `path`, or of its nearest ancestor that has one."""
        probe = tuple(path)
        while True:
            span = self._spans.get(probe)
            if span is not None:
                if at_key and span.key is not None and probe == tuple(path):
                    return span.key
                return span.value if probe == tuple(path) or span.key is None else span.key
            if not probe:
                return None
            probe = probe[:-1]

    def update(self, other: SourceMap) -> None:
        self._spans.update(other._spans)


def dotted(path: KeyPath) -> str:
    """`("data", "sources", 0, "path")` -> `data.sources[0].path`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out
