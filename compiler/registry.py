"""The target registry, fed by the `mlc.targets` entry-point group and loaded lazily.

Built-in targets register through the same group as third-party ones. An unknown name gets a
"did you mean"; a plugin that fails to import is an error naming its distribution, never an
"unknown target".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, SourceLocation, did_you_mean

if TYPE_CHECKING:
    from mlc.targets.base import Target

ENTRY_POINT_GROUP = "mlc.targets"

_scan: tuple[tuple[str, ...], Any] | None = None


def group_entry_points(group: str) -> list[EntryPoint]:
    """Entry points of `group`, from one scan of the installed distributions per `sys.path`.

    Each `importlib.metadata.entry_points(group=...)` call reads every distribution's metadata
    again (tens of ms with a full environment); targets, passes and policies share one scan.
    A changed `sys.path` (a test adding a distribution) scans again.
    """
    global _scan
    key = tuple(sys.path)
    scan = _scan
    if scan is None or scan[0] != key:
        scan = _scan = (key, entry_points())
    found: list[EntryPoint] = list(scan[1].select(group=group))
    return found


@dataclass
class TargetRegistry:
    """Name -> entry point; targets are imported on first use and cached."""

    entries: dict[str, EntryPoint] = field(default_factory=dict)
    _loaded: dict[str, Target] = field(default_factory=dict)

    @classmethod
    def from_entry_points(cls) -> TargetRegistry:
        found: dict[str, EntryPoint] = {}
        for ep in group_entry_points(ENTRY_POINT_GROUP):
            found.setdefault(ep.name, ep)
        return cls(entries=dict(sorted(found.items())))

    def names(self) -> list[str]:
        return sorted(set(self.entries) | set(self._loaded))

    def register(self, target: Target) -> None:
        """Register an instance directly (tests, embedding)."""
        self._loaded[target.name] = target

    def get(self, name: str, location: SourceLocation | None = None) -> Target:
        if name in self._loaded:
            return self._loaded[name]
        ep = self.entries.get(name)
        if ep is None:
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC401",
                        f"unknown target '{name}'",
                        location,
                        did_you_mean(name, self.names()) or "no targets are installed",
                    )
                ]
            )
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must be loud, whatever it raised
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC402",
                        f"target '{name}' from distribution '{dist}' failed to import: "
                        f"{type(exc).__name__}: {exc}",
                        location,
                        f"reinstall or fix '{dist}' (entry point {ep.value})",
                    )
                ]
            ) from None
        from mlc.targets.base import Target

        target = obj() if isinstance(obj, type) else obj
        if not isinstance(target, Target):
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC402",
                        f"target '{name}' from '{dist}' is not a mlc Target ({ep.value})",
                        location,
                        "the entry point must name a subclass of mlc.targets.Target",
                    )
                ]
            )
        if target.name != name:
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC402",
                        f"entry point '{name}' from '{dist}' names a target called '{target.name}'",
                        location,
                        "make the entry-point name match Target.name",
                    )
                ]
            )
        self._loaded[name] = target
        return target

    def all(self) -> list[Target]:
        return [self.get(n) for n in self.names()]


_default: TargetRegistry | None = None


def default_registry() -> TargetRegistry:
    global _default
    if _default is None:
        _default = TargetRegistry.from_entry_points()
    return _default
