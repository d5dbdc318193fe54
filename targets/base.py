"""The target contract: what a target declares and what `emit` returns.

A target is one module (or package) with a `Target` subclass, registered under the entry-point
group `mlc.targets`. It reads the IR only, never YAML or the spec models. From the compiler a
target imports `mlc.compiler.ir`, `mlc.compiler.diagnostics` and what this module exposes:
the cloud facts (`clouds`) and the quantity parser (`quantities`) the front end validates the
spec with, so that a target reads a region or `1.5Gi` exactly as the passes do; `parse_path`
to turn a step's origin into a source-map key path; `write_file` for files a target writes at
run time (atomically); and `COMPILER_VERSION` to stamp what it records.
`tests/compiler/test_layering.py` holds targets to this.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mlc.compiler import __version__ as COMPILER_VERSION
from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph, StepKind
from mlc.compiler.sourcemap import parse_path
from mlc.specs import clouds, quantities
from mlc.specs._base import is_secret_ref

__all__ = [
    "COMPILER_VERSION",
    "Capabilities",
    "EmitContext",
    "EmitError",
    "Target",
    "TargetOptions",
    "check_emitted",
    "clouds",
    "is_secret_ref",
    "parse_path",
    "quantities",
    "write_file",
]


class TargetOptions(BaseModel):
    """Base of a target's options model (the spec's `targets.<name>` mapping). Strict."""

    # No `use_attribute_docstrings`: pydantic reads the source of every options class at import
    # (tens of ms each, on the path of `mlc validate`); `mlc.specs.schema.attribute_docstrings`
    # reads them when documentation is wanted.
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Capabilities:
    """What a target takes responsibility for, and which settings it can honour."""

    realises: frozenset[StepKind] = frozenset()
    """Step kinds this target turns into output. Their requirements must be in `supports`."""
    supports: frozenset[str] = frozenset()
    """Requirement features (`resources.gpu`, `strategy.canary`, …) this target honours."""
    settings: frozenset[str] = frozenset()
    """Spec settings that only some target's output can make real (dotted key paths, list
    indices left out: `budgets.idle_shutdown`, `monitoring.drift.schedule`; the full list is
    `mlc.compiler.passes.capabilities.TARGET_SETTINGS`) that this target acts on. A setting the
    spec sets and no selected target claims is reported, and cost and plan leave out the jobs
    it would have started."""

    def describe(self) -> dict[str, list[str]]:
        return {
            "realises": sorted(k.value for k in self.realises),
            "supports": sorted(self.supports),
            "settings": sorted(self.settings),
        }


@dataclass
class EmitContext:
    """What `emit` gets beside the IR."""

    options: TargetOptions
    """The target's validated options."""
    project_dir: str = "."
    """The spec's folder, for reading files the spec names (never written into outputs)."""
    extra: dict[str, Any] = field(default_factory=dict)


class EmitError(Exception):
    """A target found something it cannot emit; carries located-by-path diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("\n".join(d.render() for d in diagnostics))
        self.diagnostics = diagnostics


class Target(ABC):
    """Base class of every target. Subclasses set the class attributes and implement `emit`."""

    name: ClassVar[str] = ""
    """Name used on the command line (`--target NAME`) and under `targets:` in a spec."""
    description: ClassVar[str] = ""
    options_model: ClassVar[type[TargetOptions]] = TargetOptions
    capabilities: ClassVar[Capabilities] = Capabilities()
    inspection: ClassVar[bool] = False
    """True for targets that only show the IR (they realise nothing, and say nothing about it)."""

    def check(self, ir: IRGraph, ctx: EmitContext) -> list[Diagnostic]:
        """Target-specific checks before any file is written (default: none)."""
        return []

    @abstractmethod
    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        """Return the files to write: relative POSIX path -> content."""


def check_emitted(files: Mapping[str, str | bytes]) -> list[str]:
    """Problems with an emit result: absolute or escaping paths, non-text/bytes contents."""
    problems = []
    for path, content in files.items():
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or not path or "\\" in path:
            problems.append(f"{path!r}: paths must be relative, inside the output folder")
        if not isinstance(content, str | bytes):
            problems.append(f"{path!r}: content must be str or bytes")
    return problems


def write_file(dest: Path, content: str | bytes) -> None:
    """Write one file atomically (a temporary file, then a rename).

    Raises:
        mlc.compiler.output.OutputError: `dest` or a folder above it cannot be written.
    """
    # Imported here: the output module is not needed on `mlc validate`'s start-up path.
    from mlc.compiler.output import write_file as write

    write(dest, content)
