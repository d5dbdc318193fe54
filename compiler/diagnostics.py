"""Diagnostics: every problem mlc finds, located at `file:line:col`, with a code and a hint.

Codes by family:
    MLC0xx  loading: files, YAML syntax, overlays, overrides, interpolation (MLC05x: graph
            pictures)
    MLC1xx  schema: unknown keys, wrong types, missing or invalid values
    MLC2xx  references between sections (columns, metrics, keys)
    MLC3xx  cross-field rules inside a section
    MLC4xx  targets: MLC40x registry and plugins, MLC410/420 capabilities, MLC43x terraform,
            MLC44x kfp, MLC45x local
    MLC5xx  graph: cycles, dangling artifacts
    MLC6xx  policies (MLC60x-62x), budgets and cost (MLC63x), diff and plan (MLC64x-65x)
    MLC7xx  consistency across targets (MLC70x) and serving/monitoring targets (MLC71x)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, order=True)
class SourceLocation:
    """A 1-based position in a spec file (or `<override>` for the command line)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem: what, where, and how to fix it."""

    code: str
    message: str
    location: SourceLocation | None = None
    hint: str = ""
    severity: Severity = Severity.ERROR
    path: str = ""
    """Dotted key path in the merged spec, when the problem belongs to a key."""

    def __post_init__(self) -> None:
        # Messages quote what they found; a secret-shaped part is never quoted back, whichever
        # phase (loader, schema, target, plugin) wrote the message.
        from mlc.compiler.passes.secrets import redact_text

        for name in ("message", "hint", "path"):
            text = getattr(self, name)
            cleaned = redact_text(text)
            if cleaned != text:
                object.__setattr__(self, name, cleaned)

    def redacted(self, values: Iterable[str]) -> Diagnostic:
        """This diagnostic with the given secret values (found in the spec) redacted too."""
        from mlc.compiler.passes.secrets import redact_text

        fields = {n: redact_text(getattr(self, n), values) for n in ("message", "hint", "path")}
        if all(fields[n] == getattr(self, n) for n in fields):
            return self
        return Diagnostic(self.code, location=self.location, severity=self.severity, **fields)

    def render(self) -> str:
        where = f"{self.location}: " if self.location else ""
        text = f"{where}{self.severity.value}[{self.code}]: {self.message}"
        if self.path:
            text += f" (at '{self.path}')"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, object]:
        loc = self.location
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
            "path": self.path,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "col": loc.col if loc else None,
        }

    def render_github(self) -> str:
        """A GitHub Actions workflow command, shown as an annotation on the PR's diff."""
        level = {"error": "error", "warning": "warning", "note": "notice"}[self.severity.value]
        props = []
        if self.location:
            props.append(f"file={self.location.file}")
            props.append(f"line={self.location.line}")
            props.append(f"col={self.location.col}")
        props.append(f"title={self.code}")
        message = self.message + (f" (hint: {self.hint})" if self.hint else "")
        return f"::{level} {','.join(props)}::{_gh_escape(message)}"


def _gh_escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


@dataclass
class DiagnosticError(Exception):
    """Raised when a phase cannot go on; carries every diagnostic found so far."""

    diagnostics: Sequence[Diagnostic] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Stable order: by file, line, column, then code, so output never depends on hashing."""

    def key(d: Diagnostic) -> tuple[str, int, int, str, str]:
        loc = d.location
        return (
            loc.file if loc else "~",
            loc.line if loc else 0,
            loc.col if loc else 0,
            d.code,
            d.message,
        )

    return sorted(dict.fromkeys(diagnostics), key=key)


def render(diagnostics: Sequence[Diagnostic], fmt: str = "text") -> str:
    """Render diagnostics as `text`, `json` (a list of objects) or `github` annotations."""
    ordered = sort_diagnostics(diagnostics)
    if fmt == "json":
        return json.dumps([d.to_json() for d in ordered], indent=2, sort_keys=True)
    if fmt == "github":
        return "\n".join(d.render_github() for d in ordered)
    return "\n".join(d.render() for d in ordered)


def did_you_mean(word: str, candidates: Iterable[str], what: str = "keys") -> str:
    """A hint naming the closest candidate, or listing the valid ones (`what`: keys, values).

    >>> did_you_mean("trainig", ["training", "tuning"])
    "did you mean 'training'?"
    """
    import difflib

    options = sorted(set(candidates))
    # At cutoff 0.6 no option under 0.43x the word's length can match (ratio = 2M/(a+b)):
    # skipping such words keeps a hostile multi-megabyte value from a quadratic comparison.
    longest = max((len(o) for o in options), default=0)
    close = (
        difflib.get_close_matches(word, options, n=1, cutoff=0.6)
        if len(word) <= 3 * longest
        else []
    )
    if close:
        return f"did you mean '{close[0]}'?"
    if options and len(options) <= 25:
        return f"valid {what}: " + ", ".join(options)
    return ""
