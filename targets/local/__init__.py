"""`--target local`: the pipeline run on this machine, in-process, by `mlc run`.

The target itself (`LocalTarget`, its options and the `pipeline.json` it emits) lives in
`mlc.targets.local.target`; the executor in `mlc.targets.local.executor`. This package
initialiser imports neither, so a caller that drives the executor directly (a generated IR, a
benchmark) does not pay for the target machinery's pydantic models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlc.targets.local.target import LocalOptions, LocalTarget, pipeline_steps

__all__ = ["LocalOptions", "LocalTarget", "pipeline_steps"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mlc.targets.local import target

        return getattr(target, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
