"""The `targets` section: per-target options.

The spec language knows no target: each entry maps a target name to a mapping that the target's
own options model validates (the compiler looks the target up in the `mlc.targets` registry and
reports unknown names and bad options at their place in the file).
"""

from __future__ import annotations

from mlc.specs._base import FreeValue

TargetOptions = dict[str, dict[str, FreeValue]]
