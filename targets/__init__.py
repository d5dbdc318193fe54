"""Targets: one module or package per output kind, each a `Target` registered as a plugin.

The names below load on first use (`mlc.targets.base` brings pydantic): importing a target's
runtime part, such as the local executor, must not pay for the plugin machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlc.targets.base import Capabilities, EmitContext, EmitError, Target, TargetOptions

__all__ = ["Capabilities", "EmitContext", "EmitError", "Target", "TargetOptions"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mlc.targets import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
