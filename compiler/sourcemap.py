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
    """Key path -> Span, with lookups that fall back to the nearest located ancestor.

    Besides the spans, an index from each path to its children keeps `drop_subtree` and
    `under` proportional to the subtree: merging a long `defaults:` list replaces many small
    subtrees, and a scan of the whole map per replacement made composition quadratic.
    """

    def __init__(self, spans: dict[KeyPath, Span] | None = None) -> None:
        self._spans: dict[KeyPath, Span] = {}
        self._kids: dict[KeyPath, dict[KeyPath, None]] = {}
        for path, span in (spans or {}).items():
            self.set(path, span)

    def __contains__(self, path: KeyPath) -> bool:
        return path in self._spans

    def __iter__(self) -> Iterator[KeyPath]:
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def set(self, path: KeyPath, span: Span) -> None:
        path = tuple(path)
        self._spans[path] = span
        child = path
        while child:
            parent = child[:-1]
            kids = self._kids.setdefault(parent, {})
            if child in kids:
                break
            kids[child] = None
            child = parent

    def span(self, path: KeyPath) -> Span | None:
        return self._spans.get(path)

    def under(self, path: KeyPath) -> Iterator[KeyPath]:
        """`path` (when it has a span) and every located path below it."""
        path = tuple(path)
        if path in self._spans:
            yield path
        stack = list(self._kids.get(path, ()))
        while stack:
            sub = stack.pop()
            if sub in self._spans:
                yield sub
            stack.extend(self._kids.get(sub, ()))

    def drop_subtree(self, path: KeyPath) -> None:
        """Forget everything below `path` but keep `path` (its value was replaced whole)."""
        stack = list(self._kids.pop(tuple(path), ()))
        while stack:
            sub = stack.pop()
            self._spans.pop(sub, None)
            stack.extend(self._kids.pop(sub, ()))

    def drop(self, path: KeyPath) -> None:
        """Forget `path` itself and everything below it (a deleted key)."""
        path = tuple(path)
        self._spans.pop(path, None)
        self.drop_subtree(path)
        if path:
            self._kids.get(path[:-1], {}).pop(path, None)

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
        for path, span in other._spans.items():
            self.set(path, span)


def dotted(path: KeyPath) -> str:
    """`("data", "sources", 0, "path")` -> `data.sources[0].path`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def parse_path(dotted_path: str) -> KeyPath:
    """The inverse of `dotted`: `data.sources[0].format` -> `("data", "sources", 0, "format")`.

    >>> parse_path("data.sources[0].format")
    ('data', 'sources', 0, 'format')
    >>> dotted(parse_path("training.model.params")) == "training.model.params"
    True
    """
    parts: list[str | int] = []
    for chunk in dotted_path.replace("]", "").split("."):
        if not chunk:
            continue
        name, *indices = chunk.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in indices)
    return tuple(parts)
