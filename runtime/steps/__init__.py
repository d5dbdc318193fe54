"""Step implementations by IR step kind, imported lazily so that listing them costs nothing.

`STEPS` maps an IR step kind (`StepKind.value`) to the dotted path of its module; `get(kind)`
imports the module and returns its `run(params, inputs, outputs, ctx) -> dict` function.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mlc.runtime.context import StepContext, StepError

RunFunction = Callable[
    [dict[str, Any], dict[str, str], dict[str, str], StepContext], dict[str, Any]
]

_MODULES: dict[str, str] = {
    "ingest": "mlc.runtime.steps.ingest",
    "validate": "mlc.runtime.steps.validate",
    "split": "mlc.runtime.steps.split",
    "features": "mlc.runtime.steps.features",
    "tune": "mlc.runtime.steps.tune",
    "train": "mlc.runtime.steps.train",
    "evaluate": "mlc.runtime.steps.evaluate",
    "fairness": "mlc.runtime.steps.fairness",
    "explain": "mlc.runtime.steps.explain",
    "gate": "mlc.runtime.steps.gate",
    "register": "mlc.runtime.steps.register",
    "model_card": "mlc.runtime.steps.model_card",
    "monitor": "mlc.runtime.steps.monitor",
    "retrain_trigger": "mlc.runtime.steps.retrain_trigger",
    "batch_predict": "mlc.runtime.steps.batch_predict",
    "export": "mlc.runtime.steps.export",
}


class _LazySteps(Mapping[str, RunFunction]):
    """A read-only mapping kind -> run function that imports a step module on first access."""

    def __getitem__(self, kind: str) -> RunFunction:
        module_name = _MODULES[kind]
        module = importlib.import_module(module_name)
        run: RunFunction = module.run
        return run

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)

    def module(self, kind: str) -> str:
        """The dotted module path implementing `kind` (no import)."""
        return _MODULES[kind]


STEPS = _LazySteps()


def get(kind: str) -> RunFunction:
    """The run function of step `kind`; an unknown kind is a `StepError` with a suggestion.

    Args:
        kind: an IR step kind such as `"train"` (`model-card` is accepted for `model_card`).

    Raises:
        StepError: when no step of that kind exists.
    """
    kind = kind.replace("-", "_")
    if kind not in _MODULES:
        close = difflib.get_close_matches(kind, list(_MODULES), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known: " + ", ".join(sorted(_MODULES))
        raise StepError(kind, "no runtime step of this kind", hint)
    return STEPS[kind]


__all__ = ["STEPS", "RunFunction", "get"]
