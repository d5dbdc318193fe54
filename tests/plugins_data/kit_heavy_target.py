"""A target whose module imports kfp at import time (the kit must flag it)."""

from __future__ import annotations

import kfp  # noqa: F401  (the point of this module: a heavy import at module level)
from kit_bad_targets import GoodTarget


class HeavyTarget(GoodTarget):
    name = "kit-heavy"
    description = "Imports kfp when its module is imported."
