"""One side of a diff: a spec file, or a spec read from a git ref (overlays included).

A git side is materialised by `git archive` of the ref's tree of the spec's folder into a
temporary folder, so overlays and `policies/` beside the spec come along. A side that does not
validate keeps its raw resolved data and its diagnostics, so what can be compared still is.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, SourceLocation
from mlc.compiler.ir import IRGraph
from mlc.compiler.load import LoadedSpec, display_path, load_spec
from mlc.compiler.sourcemap import KeyPath

GIT_PREFIX = "git-ref:"


@dataclass
class Side:
    """A loaded side: raw data always (unless unreadable), spec data and IR when it validates."""

    label: str
    """How the side is named in reports: a path, or `REF:path`."""
    loaded: LoadedSpec | None = None
    resolved: dict[str, Any] | None = None
    """The validated spec dumped with defaults (None when it does not validate)."""
    ir: IRGraph | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    spec_path: Path | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    _shown_root: str = ""
    _ref: str = ""

    @property
    def valid(self) -> bool:
        return self.resolved is not None

    @property
    def data(self) -> dict[str, Any]:
        """What is compared: the resolved spec, else the raw composed data."""
        if self.resolved is not None:
            return self.resolved
        return dict(self.loaded.data) if self.loaded is not None else {}

    def locate(self, path: KeyPath) -> SourceLocation | None:
        """Location of `path` on this side, shown as `REF:file` for git sides."""
        if self.loaded is None:
            return None
        loc = self.loaded.source_map.locate(path, at_key=True)
        return self.relabel(loc)

    def relabel(self, loc: SourceLocation | None) -> SourceLocation | None:
        if loc is None or not self._shown_root:
            return loc
        if loc.file.startswith(self._shown_root):
            rel = loc.file[len(self._shown_root) :].lstrip("/")
            return SourceLocation(f"{self._ref}:{rel}", loc.line, loc.col)
        return loc

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC642",
                    "git is not installed",
                    None,
                    "install git, or pass both sides as files",
                )
            ]
        ) from None


def materialise_git(
    ref: str, spec: str | Path
) -> tuple[tempfile.TemporaryDirectory[str], Path, str]:
    """Extract the ref's tree of the spec's folder; return (tempdir, spec path in it, repo path).

    `spec` is a path in the working tree (absolute or relative to the current folder).

    Raises:
        DiagnosticError: not a repository, unknown ref, or the spec is not in that ref.
    """
    spec_path = Path(spec).resolve()
    folder = spec_path.parent
    probe = folder if folder.exists() else Path.cwd()
    top = _git(["rev-parse", "--show-toplevel"], probe)
    if top.returncode != 0:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC642",
                    f"{display_path(probe)} is not inside a git repository",
                    None,
                    "run mlc diff inside the repository, or pass both sides as files",
                )
            ]
        )
    root = Path(top.stdout.decode().strip()).resolve()
    if _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root).returncode != 0:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC640",
                    f"git ref '{ref}' does not exist",
                    None,
                    "fetch it first (git fetch origin) or name a branch, tag or commit that exists",
                )
            ]
        )
    rel_folder = folder.relative_to(root).as_posix() if folder != root else "."
    rel_spec = spec_path.relative_to(root).as_posix()
    archive = _git(["archive", "--format=tar", ref, "--", rel_folder], root)
    if (
        archive.returncode != 0
        or _git(["cat-file", "-e", f"{ref}:{rel_spec}"], root).returncode != 0
    ):
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC641",
                    f"'{rel_spec}' does not exist at git ref '{ref}'",
                    None,
                    "the spec may be new in this change; diff against a ref that has it",
                )
            ]
        )
    tmp = tempfile.TemporaryDirectory(prefix="mlc-diff-")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp.name, filter="data")
    return tmp, Path(tmp.name) / rel_spec, rel_spec


def parse_side(text: str) -> tuple[str | None, str]:
    """`git-ref:REF:PATH` or `REF:PATH` (when PATH is not an existing file) -> (ref, path).

    >>> parse_side("git-ref:origin/main:mlc.yaml")
    ('origin/main', 'mlc.yaml')
    """
    if text.startswith(GIT_PREFIX):
        ref, _, path = text[len(GIT_PREFIX) :].rpartition(":")
        return ref, path
    if ":" in text and not Path(text).exists():
        ref, _, path = text.rpartition(":")
        if ref and path:
            return ref, path
    return None, text


def load_side(text: str, overrides: list[str] | None = None, git_ref: str | None = None) -> Side:
    """Load a side named as a path or `git-ref:REF:PATH` (or given `git_ref` and a path)."""
    ref, path = (git_ref, text) if git_ref else parse_side(text)
    side = Side(label=text)
    spec_file = Path(path)
    if ref is not None:
        tmp, spec_file, rel = materialise_git(ref, path)
        side._tmp, side._ref = tmp, ref
        side._shown_root = display_path(Path(tmp.name))
        side.label = f"{ref}:{rel}"
    side.spec_path = spec_file
    _check_side(side, spec_file, overrides or [])
    return side


def _check_side(side: Side, spec_file: Path, overrides: list[str]) -> None:
    from mlc.compiler.api import check

    try:
        result = check(spec_file, overrides)
    except DiagnosticError as exc:
        side.diagnostics = [_relabel(side, d) for d in exc.diagnostics]
        try:
            side.loaded = load_spec(spec_file, overrides)
        except DiagnosticError:
            side.loaded = None
        return
    side.loaded = result.loaded
    side.resolved = result.spec.model_dump(mode="json", by_alias=True)
    side.ir = result.ir
    side.diagnostics = [_relabel(side, d) for d in result.diagnostics]


def _relabel(side: Side, d: Diagnostic) -> Diagnostic:
    loc = side.relabel(d.location)
    if loc == d.location:
        return d
    return Diagnostic(d.code, d.message, loc, d.hint, d.severity, d.path)
