"""Finding the project a command works on, the way git finds a repository.

Every command takes the spec file or the project folder as an optional positional argument.
A file is the spec; a folder (the working directory when none is given) is searched upward for
the first folder holding `mlc.yaml` or `.mlc/`. Nothing found is an error naming where the
search started, never an empty answer about a folder that is not a project.

Only the standard library and the spec loader are imported: `mlc validate` must stay light.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SPEC_FILE = "mlc.yaml"
STATE_DIR = ".mlc"

_OVERRIDE = re.compile(r"^(?:[~+]|[\w.\-@/]+=)")
"""Hydra's override grammar starts `~key`, `+key=`, `++key=` or `key=` (`group=option`)."""


class ProjectError(Exception):
    """No project where the user pointed (or above it); the message says where and what."""


@dataclass(frozen=True)
class Project:
    """A spec project: its folder, its spec (when it has one) and its state folder."""

    root: Path
    spec: Path | None
    state_dir: Path


def looks_like_override(token: str) -> bool:
    """Whether a positional argument is an override rather than a spec path."""
    return bool(_OVERRIDE.match(token)) and not Path(token).exists()


def _upward(start: Path) -> Path | None:
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / SPEC_FILE).is_file() or (folder / STATE_DIR).is_dir():
            return folder
    return None


def _not_found(start: Path) -> ProjectError:
    return ProjectError(
        f"no mlc project at or above '{start}': expected a folder holding {SPEC_FILE} or "
        f"{STATE_DIR}/ (pass the spec file or the project folder)"
    )


def resolve_spec(
    spec: str | Path | None, overrides: Sequence[str] | None = None
) -> tuple[Path, list[str]]:
    """The spec file a spec command reads, and its overrides.

    `spec` may be the spec file, a folder of (or below) a project, or absent (the project around
    the working directory). A first positional that is an override (`mlc validate env=prod`)
    joins the overrides. A path that does not exist is returned as it is: loading it reports
    the missing file in the usual diagnostic form.
    """
    rest = list(overrides or ())
    if spec is not None and looks_like_override(str(spec)):
        rest.insert(0, str(spec))
        spec = None
    if spec is not None and not Path(spec).is_dir():
        return Path(spec), rest
    start = Path(spec) if spec is not None else Path.cwd()
    root = _upward(start)
    if root is None:
        raise _not_found(start)
    found = root / SPEC_FILE
    if not found.is_file():
        raise ProjectError(
            f"the project '{root}' (found from '{start}') holds {STATE_DIR}/ but no {SPEC_FILE}: "
            "pass the spec file"
        )
    return _shown(found), rest


def _shown(path: Path) -> Path:
    """`path` relative to the working directory, as diagnostics show spec files."""
    try:
        return Path(os.path.relpath(path))
    except ValueError:
        return path


def find_project(path: str | Path | None = None) -> Project:
    """The project `path` names (spec file or folder), else the one around the working directory.

    Raises:
        ProjectError: `path` does not exist, or no folder at or above it is a project.
    """
    if path is not None and not Path(path).exists():
        # a link that leads nowhere is there, but broken: say so rather than "does not exist"
        what = (
            "is a broken symlink or a symlink loop" if os.path.lexists(path) else "does not exist"
        )
        raise ProjectError(
            f"'{path}' {what}: expected a spec file or a project folder "
            f"(one holding {SPEC_FILE} or {STATE_DIR}/)"
        )
    if path is not None and Path(path).is_file():
        file = Path(path).resolve()
        spec: Path | None = file
        root = file.parent
    else:
        start = Path(path) if path is not None else Path.cwd()
        found = _upward(start)
        if found is None:
            raise _not_found(start)
        root = found
        spec = root / SPEC_FILE if (root / SPEC_FILE).is_file() else None
    return Project(root, spec, root / _state_dir_setting(spec))


def _state_dir_setting(spec: Path | None) -> str:
    """`targets.local.state_dir` of the spec (`.mlc` when unset or the spec does not load)."""
    if spec is None:
        return STATE_DIR
    from mlc.compiler.diagnostics import DiagnosticError
    from mlc.compiler.load import load_spec

    try:
        data = load_spec(spec).data
    except DiagnosticError:
        # A spec with errors still has its runs: they are under the default folder unless the
        # spec said otherwise, and it cannot say anything readable now.
        return STATE_DIR
    local = (data.get("targets") or {}).get("local") if isinstance(data, dict) else None
    value = local.get("state_dir") if isinstance(local, dict) else None
    return str(value) if isinstance(value, str) and value else STATE_DIR
