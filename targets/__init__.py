"""Targets: one module or package per output kind, each a `Target` registered as a plugin."""

from mlc.targets.base import Capabilities, EmitContext, EmitError, Target, TargetOptions

__all__ = ["Capabilities", "EmitContext", "EmitError", "Target", "TargetOptions"]
