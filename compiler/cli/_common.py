"""Shared CLI plumbing: error handling, diagnostics output, exit codes.

Exit codes: 0 success, 1 internal error, 2 spec errors, bad usage or no project where one was
expected; `mlc run` adds 3 (a gate failed) and 4 (a step failed), see `mlc.compiler.cli.run`.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from mlc.compiler.cli._project import ProjectError
from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, render

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_SPEC = 2

F = TypeVar("F", bound=Callable[..., Any])

SpecArg = Annotated[
    Path | None,
    typer.Argument(
        help="Spec file or project folder (default: the project at or above the working folder).",
        show_default=False,
    ),
]
"""The spec positional of every spec command, resolved by `_project.resolve_spec`."""
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(help="Overrides in Hydra's grammar: key=value, +key=value, ~key, group=option."),
]


class Format(str, Enum):
    text = "text"
    json = "json"
    github = "github"


VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Every 'not realised' warning, not their summary.")
]


def emit_diagnostics(diags: Sequence[Diagnostic], fmt: Format, verbose: bool = False) -> None:
    if fmt is not Format.json:
        # one summary line stands for the per-section 'not realised' warnings; json keeps all
        from mlc.compiler.passes.capabilities import condense

        diags = condense(diags, verbose)
    if not diags and fmt is not Format.json:
        return
    text = render(diags, fmt.value)
    if text:
        print(text, file=sys.stderr if fmt is Format.text else sys.stdout)


def handle_errors(func: F) -> F:
    """Turn `DiagnosticError`, `ProjectError` and file-system errors into exit 2 and anything
    unexpected into exit 1, never a traceback.

    Set `MLC_DEBUG=1` to see the traceback of an internal error.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fmt = kwargs.get("format") or kwargs.get("fmt") or Format.text
        if not isinstance(fmt, Format):
            fmt = Format.text
        try:
            return func(*args, **kwargs)
        except DiagnosticError as exc:
            emit_diagnostics(exc.diagnostics, fmt)
            raise typer.Exit(EXIT_SPEC) from None
        except ProjectError as exc:
            print(f"mlc: error: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_SPEC) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt, BrokenPipeError):
            raise
        except OSError as exc:
            # a path the user named, or one a command reads or writes for them: exit 2 with the
            # path and what is wrong; an OSError without a path is not the user's to fix
            if exc.filename is None:
                _internal(exc)
            print(f"mlc: error: {fs_problem(exc)}", file=sys.stderr)
            raise typer.Exit(EXIT_SPEC) from None
        except RuntimeError as exc:
            # pathlib's resolve() reports a symlink loop as RuntimeError("Symlink loop from ...")
            loop = _SYMLINK_LOOP.match(str(exc))
            if loop is None:
                _internal(exc)
            print(f"mlc: error: {loop.group(1)}: a symlink loop", file=sys.stderr)
            raise typer.Exit(EXIT_SPEC) from None
        except Exception as exc:
            # A tracking store that is locked, corrupt or unreachable is the user's to mend (the
            # message says how), not an internal error; the module is light, and only imported
            # on this path.
            from mlc.runtime.store import StoreError

            if not isinstance(exc, StoreError):
                _internal(exc)
            print(f"mlc: error: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_SPEC) from None

    return wrapper  # type: ignore[return-value]


_SYMLINK_LOOP = re.compile(r"Symlink loop from (.+)$")


def fs_problem(exc: OSError) -> str:
    """`'<path>': <what is wrong>` for a file-system error, with the action for outputs."""
    from mlc.compiler.output import OutputError, fs_reason

    if isinstance(exc, OutputError):
        return f"cannot write '{exc.filename}': {exc.strerror}"
    other = f" (and '{exc.filename2}')" if exc.filename2 is not None else ""
    return f"'{exc.filename}'{other}: {fs_reason(exc)}"


def _internal(exc: BaseException) -> NoReturn:
    if os.environ.get("MLC_DEBUG"):
        traceback.print_exception(exc)
    print(
        f"mlc: internal error: {type(exc).__name__}: {exc}\n"
        "  set MLC_DEBUG=1 to see where it happened, and please report it",
        file=sys.stderr,
    )
    raise typer.Exit(EXIT_INTERNAL) from None
