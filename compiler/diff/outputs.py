"""What a change does to each selected target's output: both sides emitted in memory, compared."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError
from mlc.compiler.ir import IRGraph
from mlc.compiler.registry import TargetRegistry, default_registry


@dataclass(frozen=True)
class FileChange:
    target: str
    path: str
    kind: str
    """`added`, `removed` or `changed`."""
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "path": self.path,
            "kind": self.kind,
            "summary": self.summary,
        }


def emit_in_memory(
    ir: IRGraph,
    target_name: str,
    options: dict[str, Any],
    project_dir: str,
    registry: TargetRegistry | None = None,
) -> dict[str, bytes]:
    """Emit one target without writing anything.

    Raises:
        DiagnosticError: unknown target, bad options, or the target refused to emit.
    """
    from mlc.targets.base import EmitContext, EmitError

    registry = registry or default_registry()
    target = registry.get(target_name)
    try:
        opts = target.options_model.model_validate(options)
        files = target.emit(ir, EmitContext(options=opts, project_dir=project_dir))
    except EmitError as exc:
        raise DiagnosticError(exc.diagnostics) from None
    except ValueError as exc:
        raise DiagnosticError([Diagnostic("MLC404", f"target '{target_name}': {exc}")]) from None
    return {p: c.encode() if isinstance(c, str) else c for p, c in files.items()}


def _summary(old: bytes, new: bytes) -> str:
    try:
        a, b = old.decode().splitlines(), new.decode().splitlines()
    except UnicodeDecodeError:
        return f"binary, {len(old)} -> {len(new)} bytes"
    added = removed = 0
    for line in difflib.unified_diff(a, b, lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return f"+{added} -{removed} lines"


def compare_files(
    target: str, base: Mapping[str, bytes], head: Mapping[str, bytes]
) -> list[FileChange]:
    """Added / removed / changed files with a short summary each."""
    out = []
    for path in sorted(set(base) | set(head)):
        if path not in head:
            out.append(FileChange(target, path, "removed", f"{len(base[path])} bytes"))
        elif path not in base:
            lines = head[path].count(b"\n")
            out.append(FileChange(target, path, "added", f"{lines} lines"))
        elif base[path] != head[path]:
            out.append(FileChange(target, path, "changed", _summary(base[path], head[path])))
    return out


def diff_outputs(
    targets: Sequence[str], base: IRGraph | None, head: IRGraph | None, base_dir: str, head_dir: str
) -> tuple[list[FileChange], list[Diagnostic]]:
    """Compare each target's files between the two IRs (a missing IR emits nothing)."""
    changes: list[FileChange] = []
    problems: list[Diagnostic] = []
    for name in targets:
        sides: list[dict[str, bytes]] = []
        for ir, folder in ((base, base_dir), (head, head_dir)):
            if ir is None:
                sides.append({})
                continue
            opts = (ir.settings.get("target_options") or {}).get(name) or {}
            try:
                sides.append(emit_in_memory(ir, name, opts, folder))
            except DiagnosticError as exc:
                problems.extend(exc.diagnostics)
                sides.append({})
        changes.extend(compare_files(name, sides[0], sides[1]))
    return changes, problems
