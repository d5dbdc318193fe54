"""ONNX edge export of a registered model: conversion, parity gate, quantisation, latency.

The graph takes the RAW input columns, one input each, named as the column: numbers as
`tensor(float)` (or `tensor(double)`, see below), ints as `tensor(int64)`, bools as
`tensor(bool)`, text and categories as `tensor(string)`, all of shape `[N, 1]`. The sklearn
`Pipeline` is converted with skl2onnx; mlc's own transforms get converters here
(`DerivedFeatures` for arithmetic expressions, `LogTransform`, the `bucketize` digitizer).

Transforms with no ONNX form (keyed pseudonymisation, user functions) run before the graph as
a pre-step described by `prestep.json` (class, parameters and columns; never a key: the key is
read from the environment when the package scores, as in the pipeline itself). They must lead
their column's chain: one after a converted transform cannot be split off.

A Lightning MLP is exported with `torch.onnx.export(dynamo=False)` and merged after the
preprocessing graph into one `model.onnx` (softmax and the class lookup are added after the
logits), so a package always holds one graph. A Keras network (`framework: keras`) is exported
by Keras itself (`Model.export(format="onnx")`, see `KerasEstimator.onnx_network`) and merged
the same way; a network ending in a softmax gives its probabilities as they are.

Precision: the graph is built in float32 first; when the parity gate fails it is rebuilt in
float64, where tree ensembles compare against the model's own float64 thresholds (sklearn's
single trees and forests compare float32-rounded features, and the graph does the same). The
gate runs on the test rows and on probe rows placed at every tree split threshold (and its
nextafter neighbours) that maps back to a raw column.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import shutil
import statistics
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlc.compiler.ir.params import ColumnParams, EdgeParams, ParityParams

STEP = "export"
FORMAT_VERSION = "1"
PRODUCER = "mlc"
PRESTEP_CLASSES = ("Pseudonymiser", "CustomTransform")
"""Transforms with no ONNX form that may run before the graph (in `prestep.json`)."""
OWN_CONVERTED = ("DerivedFeatures", "LogTransform", "FunctionTransformer")
NETWORKS = ("MLPEstimator", "KerasEstimator")
"""Estimators whose network is exported on its own and merged after the preprocessing graph."""
SUPPORTED_HINT = (
    "exportable: scikit-learn estimators and transforms with a skl2onnx converter "
    "(linear models, trees, forests, gradient boosting incl. HistGradientBoosting, SVMs, "
    "naive Bayes, k-NN, scalers, imputers, one-hot, k-bins), mlc's derive/log/bucketize "
    "transforms, the Lightning tabular MLP, Keras networks, LightGBM/XGBoost with onnxmltools "
    "installed; pseudonymise and custom transforms run as a pre-step"
)
PROBE_LIMIT = 3000
SINGLE_RUNS = 200
BATCH_ROWS = 1000


# ---------------------------------------------------------------------------------------------
# What converts


def _class_name(obj: Any) -> str:
    return type(obj).__name__


def _is_digitizer(obj: Any) -> bool:
    from mlc.runtime.steps import features

    return getattr(obj, "func", None) is features._digitize


def _registry() -> set[str]:
    from skl2onnx._supported_operators import sklearn_operator_name_map

    return {cls.__name__ for cls in sklearn_operator_name_map}


def _boosting_package(obj: Any) -> str | None:
    module = type(obj).__module__.split(".")[0]
    return module if module in ("lightgbm", "xgboost") else None


def _leaf_problem(obj: Any) -> str | None:
    """Why `obj` (not a Pipeline/ColumnTransformer) has no ONNX form here, or None."""
    name = _class_name(obj)
    if isinstance(obj, str):
        return None if obj in ("passthrough", "drop") else obj
    if name == "FunctionTransformer":
        return (
            None if obj.func is None or _is_digitizer(obj) else f"FunctionTransformer({obj.func})"
        )
    if name in OWN_CONVERTED or name in NETWORKS:
        return None
    if _boosting_package(obj) is not None:
        return None
    return None if name in _registry() else name


def _parts(obj: Any) -> list[Any]:
    """`obj` and the estimators inside a Pipeline / ColumnTransformer, leaves only."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(obj, Pipeline):
        return [p for _, step in obj.steps for p in _parts(step)]
    if isinstance(obj, ColumnTransformer):
        entries = getattr(obj, "transformers_", obj.transformers)
        return [p for _, t, _ in entries for p in _parts(t)]
    return [obj]


def unsupported(model_or_names: Any) -> list[str]:
    """Class names in a model (or in a list of class names) that block an ONNX export.

    Pre-step transforms (pseudonymise, custom) do not block it; their place in the pipeline
    is checked when the model is split (`split`).
    """
    if isinstance(model_or_names, list | tuple | set) and all(
        isinstance(n, str) for n in model_or_names
    ):
        known = _registry() | set(OWN_CONVERTED) | set(PRESTEP_CLASSES) | set(NETWORKS)
        known |= {"Pipeline", "ColumnTransformer"}
        return sorted({n for n in model_or_names if n not in known})
    found = set()
    for part in _parts(model_or_names):
        if _class_name(part) in PRESTEP_CLASSES:
            continue
        problem = _leaf_problem(part)
        if problem is not None:
            found.add(problem)
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Splitting the pipeline: pre-step, converted transforms, estimator


@dataclass
class Split:
    """The pipeline cut into what runs before the graph and what the graph computes."""

    prestep: list[dict[str, Any]]
    transforms: list[tuple[str, Any]]
    estimator: Any
    converted: list[str] = field(default_factory=list)
    prestepped: list[str] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)


def _flatten(model: Any) -> list[tuple[str, Any]]:
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline):
        return [("model", model)]
    flat: list[tuple[str, Any]] = []
    for name, step in model.steps:
        if isinstance(step, Pipeline):
            flat += [(f"{name}.{n}", s) for n, s in _flatten(step)]
        else:
            flat.append((name, step))
    return flat


def _chain(obj: Any) -> list[tuple[str, Any]]:
    from sklearn.pipeline import Pipeline

    return list(obj.steps) if isinstance(obj, Pipeline) else [("step", obj)]


def _prestep_spec(obj: Any) -> dict[str, Any]:
    name = _class_name(obj)
    if name == "Pseudonymiser":
        return {"class": name, "key_ref": obj.key_ref, "buckets": int(obj.buckets)}
    return {
        "class": name,
        "function": obj.function,
        "feature_names_in": [str(c) for c in obj.feature_names_in_],
        "names_out": [str(c) for c in obj.get_feature_names_out()],
    }


def _expr_names(expr: str) -> set[str] | None:
    """Column names an arithmetic `DataFrame.eval` expression reads, or None if the
    expression is not plain arithmetic (then the graph cannot compute it)."""
    import ast

    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return None
    names: set[str] = set()
    allowed_ops = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                return None
        elif isinstance(node, ast.BinOp | ast.UnaryOp):
            if not isinstance(node.op, allowed_ops):
                return None
        elif not isinstance(node, ast.Expression | ast.Load | ast.operator | ast.unaryop):
            return None
    return names


def split(model: Any, text_columns: set[str]) -> Split:
    """Cut `model` into pre-step, converted transforms and estimator.

    Raises:
        StepError: a class with no ONNX form, or a pre-step transform after a converted one.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer

    if _class_name(model) == "MitigatedModel":
        raise StepError(
            STEP,
            "the model is a fairness-mitigated MitigatedModel (a randomized decision rule), "
            "which has no ONNX form",
            SUPPORTED_HINT,
        )
    flat = _flatten(model)
    estimator = flat[-1][1]
    steps = flat[:-1]
    bad = unsupported(estimator) if not hasattr(estimator, "transform") else []
    if bad or _class_name(estimator) in PRESTEP_CLASSES:
        raise StepError(
            STEP, f"estimator {_class_name(estimator)} has no ONNX converter", SUPPORTED_HINT
        )
    prestep: list[dict[str, Any]] = []
    out = Split(prestep=prestep, transforms=[], estimator=estimator)
    seen_converted = False
    derive_index = None
    for name, step in steps:
        cls = _class_name(step)
        if cls in PRESTEP_CLASSES:
            if seen_converted:
                raise StepError(
                    STEP,
                    f"transform '{name}' ({cls}) has no ONNX form and runs after converted "
                    "transforms, so it cannot run before the graph",
                    "put pseudonymise/custom transforms first in their column's chain",
                )
            prestep.append(
                {
                    "kind": "frame",
                    "transform": _prestep_spec(step),
                    "outputs": [str(c) for c in step.get_feature_names_out()],
                }
            )
            out.prestepped.append(f"{name} ({cls})")
            continue
        seen_converted = True
        if cls == "DerivedFeatures":
            derive_index = len(out.transforms)
        out.transforms.append((name, step))
    derive = out.transforms[derive_index][1] if derive_index is not None else None
    derived_names = [n for n, _ in derive.derived] if derive is not None else []
    out.derived = derived_names
    read_by_derive: set[str] = set()
    expressible = True
    for _, expr in derive.derived if derive is not None else ():
        reads = _expr_names(expr)
        if reads is None or reads & text_columns:
            expressible = False
            continue
        read_by_derive |= reads
    # Column-level pre-steps: leading pseudonymise/custom transforms of a ColumnTransformer
    # entry; the graph then reads their outputs instead of the raw columns.
    ct_index = next(
        (
            k
            for k, (_, s) in enumerate(out.transforms)
            if isinstance(s, ColumnTransformer) and (derive_index is None or k == derive_index + 1)
        ),
        None,
    )
    for k, (name, step) in enumerate(out.transforms):
        if isinstance(step, ColumnTransformer) and k == ct_index:
            continue
        for part in _parts(step):
            if _class_name(part) in PRESTEP_CLASSES:
                raise StepError(
                    STEP,
                    f"transform {_class_name(part)} inside '{name}' has no ONNX form and "
                    "runs after converted transforms, so it cannot run before the graph",
                    "put pseudonymise/custom transforms first in their column's chain",
                )
    column_stages: list[dict[str, Any]] = []
    if ct_index is not None:
        ct_name, ct = out.transforms[ct_index]
        ct = copy.deepcopy(ct)
        entries = []
        for entry_name, trans, cols in ct.transformers_:
            chain = _chain(trans) if not isinstance(trans, str) else []
            lead = 0
            while lead < len(chain) and _class_name(chain[lead][1]) in PRESTEP_CLASSES:
                lead += 1
            for step_name, part in chain[lead:]:
                if _class_name(part) in PRESTEP_CLASSES:
                    raise StepError(
                        STEP,
                        f"transform '{entry_name}.{step_name}' ({_class_name(part)}) has no "
                        "ONNX form and runs after a converted transform in its chain",
                        "put pseudonymise/custom transforms first in their column's chain",
                    )
            if lead == 0:
                entries.append((entry_name, trans, cols))
                continue
            columns = [str(c) for c in cols]
            produced: list[str] = columns
            for _, part in chain[:lead]:
                produced = [str(n) for n in part.get_feature_names_out(produced)]
            column_stages.append(
                {
                    "kind": "columns",
                    "entry": entry_name,
                    "inputs": columns,
                    "transforms": [_prestep_spec(p) for _, p in chain[:lead]],
                    "outputs": list(produced),
                }
            )
            out.prestepped += [f"{entry_name}.{n} ({_class_name(p)})" for n, p in chain[:lead]]
            rest = chain[lead:]
            if rest:
                from sklearn.pipeline import Pipeline

                new: Any = Pipeline(rest) if len(rest) > 1 else rest[0][1]
            else:
                new = FunctionTransformer(feature_names_out="one-to-one")
            entries.append((entry_name, new, list(produced)))
        ct.transformers_ = entries
        out.transforms[ct_index] = (ct_name, ct)
    if column_stages and derive is not None:
        touched = {c for s in column_stages for c in s["inputs"]}
        if touched & (read_by_derive | set(derived_names)):
            expressible = False
    if derive is not None and not expressible:
        # The graph cannot compute the derived columns: they are computed before it.
        prestep.append({"kind": "derive", "derived": [list(d) for d in derive.derived]})
        out.prestepped.append(f"{out.transforms[derive_index][0]} (DerivedFeatures)")  # type: ignore[index]
        del out.transforms[derive_index]  # type: ignore[arg-type]
    prestep += column_stages
    out.converted = [f"{n} ({_class_name(s)})" for n, s in out.transforms]
    for _, step in out.transforms:
        bad = unsupported(step)
        if bad:
            raise StepError(
                STEP,
                "transform class(es) " + ", ".join(bad) + " have no ONNX converter",
                SUPPORTED_HINT,
            )
    return out


def _load_prestep_transform(spec: dict[str, Any]) -> Any:
    import numpy as np

    from mlc.runtime.steps import _transforms

    if spec["class"] == "Pseudonymiser":
        return _transforms.Pseudonymiser(key_ref=spec["key_ref"], buckets=spec["buckets"])
    if spec["class"] == "CustomTransform":
        t = _transforms.CustomTransform(function=spec["function"])
        t.feature_names_in_ = np.asarray(spec["feature_names_in"], dtype=object)
        t.names_out_ = np.asarray(spec["names_out"], dtype=object)
        return t
    raise StepError(STEP, f"unknown pre-step transform {spec['class']}", "re-export the model")


def apply_prestep(stages: list[dict[str, Any]], frame: pd.DataFrame) -> pd.DataFrame:
    """Run the pre-step stages (as `prestep.json` lists them) on a frame of raw columns."""
    import pandas as pd

    from mlc.runtime.steps._transforms import DerivedFeatures

    for stage in stages:
        if stage["kind"] == "frame":
            t = _load_prestep_transform(stage["transform"])
            frame = pd.DataFrame(t.transform(frame), columns=stage["outputs"], index=frame.index)
        elif stage["kind"] == "derive":
            frame = DerivedFeatures(tuple(tuple(d) for d in stage["derived"])).transform(frame)
        else:
            values: Any = frame[stage["inputs"]]
            for spec in stage["transforms"]:
                values = _load_prestep_transform(spec).transform(values)
            frame = frame.copy()
            for j, name in enumerate(stage["outputs"]):
                frame[name] = pd.DataFrame(values).iloc[:, j].to_numpy()
    return frame


# ---------------------------------------------------------------------------------------------
# Converters for mlc's own transforms


def _float_proto(var: Any) -> int:
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType

    return TensorProto.DOUBLE if isinstance(var.type, DoubleTensorType) else TensorProto.FLOAT


def _np_float(var: Any) -> Any:
    import numpy as np
    from skl2onnx.common.data_types import DoubleTensorType

    return np.float64 if isinstance(var.type, DoubleTensorType) else np.float32


def _const(scope: Any, container: Any, var: Any, values: Any, name: str) -> str:
    import numpy as np

    arr = np.asarray(values, dtype=_np_float(var))
    init = scope.get_unique_variable_name(name)
    container.add_initializer(init, _float_proto(var), list(arr.shape), arr.ravel().tolist())
    return str(init)


def _same_shape(operator: Any) -> None:
    for out, inp in zip(operator.outputs, operator.inputs, strict=False):
        out.type = inp.type.__class__(inp.type.shape)


def _log_converter(scope: Any, operator: Any, container: Any) -> None:
    x = operator.inputs[0]
    offset = _const(scope, container, x, [operator.raw_operator.offset], "log_offset")
    floor = _const(scope, container, x, [1e-12], "log_floor")
    shifted = scope.get_unique_variable_name("log_shifted")
    clipped = scope.get_unique_variable_name("log_clipped")
    nan = scope.get_unique_variable_name("log_isnan")
    kept = scope.get_unique_variable_name("log_kept")
    container.add_node(
        "Add", [x.full_name, offset], [shifted], name=scope.get_unique_operator_name("Add")
    )
    container.add_node(
        "Max", [shifted, floor], [clipped], name=scope.get_unique_operator_name("Max")
    )
    # np.clip keeps NaN; ONNX Max need not, so NaN is put back explicitly.
    container.add_node("IsNaN", [shifted], [nan], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node(
        "Where", [nan, shifted, clipped], [kept], name=scope.get_unique_operator_name("Where")
    )
    container.add_node(
        "Log", [kept], [operator.outputs[0].full_name], name=scope.get_unique_operator_name("Log")
    )


def _function_converter(scope: Any, operator: Any, container: Any) -> None:
    x = operator.inputs[0]
    model = operator.raw_operator
    y = operator.outputs[0].full_name
    if model.func is None:
        container.add_node(
            "Identity", [x.full_name], [y], name=scope.get_unique_operator_name("Identity")
        )
        return
    edges = list(model.kw_args["edges"])
    # np.digitize(x, edges) (increasing edges) is the number of edges <= x; NaN sorts last.
    total = None
    for k, edge in enumerate(edges):
        e = _const(scope, container, x, [edge], f"edge{k}")
        ge = scope.get_unique_variable_name("ge")
        as_float = scope.get_unique_variable_name("ge_f")
        container.add_node(
            "GreaterOrEqual",
            [x.full_name, e],
            [ge],
            name=scope.get_unique_operator_name("GreaterOrEqual"),
        )
        container.add_node(
            "Cast",
            [ge],
            [as_float],
            to=_float_proto(x),
            name=scope.get_unique_operator_name("Cast"),
        )
        if total is None:
            total = as_float
        else:
            summed = scope.get_unique_variable_name("digit_sum")
            container.add_node(
                "Add", [total, as_float], [summed], name=scope.get_unique_operator_name("Add")
            )
            total = summed
    nan = scope.get_unique_variable_name("digit_isnan")
    last = _const(scope, container, x, [len(edges)], "digit_last")
    container.add_node("IsNaN", [x.full_name], [nan], name=scope.get_unique_operator_name("IsNaN"))
    if total is None:
        zero = _const(scope, container, x, [0.0], "digit_zero")
        total = scope.get_unique_variable_name("digit_zeros")
        container.add_node(
            "Mul", [x.full_name, zero], [total], name=scope.get_unique_operator_name("Mul")
        )
    container.add_node(
        "Where", [nan, last, total], [y], name=scope.get_unique_operator_name("Where")
    )


def _derive_parser(scope: Any, model: Any, inputs: list[Any], custom_parsers: Any = None) -> Any:
    op = scope.declare_local_operator("MlcDerivedFeatures", model)
    op.inputs = list(inputs)
    numeric = next(v for v in inputs if _is_float_var(v))
    outs = []
    for name, _ in model.derived:
        var = scope.declare_local_variable(name, numeric.type.__class__([None, 1]))
        op.outputs.append(var)
        outs.append(var)
    return list(inputs) + outs


def _is_float_var(var: Any) -> bool:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    return isinstance(var.type, FloatTensorType | DoubleTensorType)


def _derive_shape(operator: Any) -> None:
    """Outputs are declared by the parser ([N, 1] each)."""


def _derive_converter(scope: Any, operator: Any, container: Any) -> None:
    import ast

    by_name = {v.raw_name: v for v in operator.inputs}
    ref = next(v for v in operator.inputs if _is_float_var(v))
    ops = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul", ast.Div: "Div", ast.Pow: "Pow"}
    # A derived column may read one derived before it, as DataFrame.eval sees the frame so far.
    names: dict[str, str] = {k: v.full_name for k, v in by_name.items()}

    def emit(node: ast.AST) -> str:
        if isinstance(node, ast.Expression):
            return emit(node.body)
        if isinstance(node, ast.Name):
            return names[node.id]
        if isinstance(node, ast.Constant):
            value = node.value
            assert isinstance(value, int | float)  # checked by _expr_names
            return _const(scope, container, ref, [float(value)], "derive_const")
        if isinstance(node, ast.UnaryOp):
            inner = emit(node.operand)
            if isinstance(node.op, ast.UAdd):
                return inner
            res = scope.get_unique_variable_name("derive_neg")
            container.add_node("Neg", [inner], [res], name=scope.get_unique_operator_name("Neg"))
            return str(res)
        assert isinstance(node, ast.BinOp)
        left, right = emit(node.left), emit(node.right)
        res = scope.get_unique_variable_name("derive_tmp")
        op_type = ops[type(node.op)]
        container.add_node(
            op_type, [left, right], [res], name=scope.get_unique_operator_name(op_type)
        )
        return str(res)

    for (name, expr), out in zip(operator.raw_operator.derived, operator.outputs, strict=True):
        result = emit(ast.parse(expr, mode="eval"))
        container.add_node(
            "Identity", [result], [out.full_name], name=scope.get_unique_operator_name("Identity")
        )
        names[name] = out.full_name


@functools.cache
def _register_converters() -> None:
    from skl2onnx import update_registered_converter
    from sklearn.preprocessing import FunctionTransformer

    from mlc.runtime.steps._transforms import DerivedFeatures, LogTransform

    update_registered_converter(LogTransform, "MlcLogTransform", _same_shape, _log_converter)
    # skl2onnx's own FunctionTransformer converter handles the identity only; this one also
    # computes the bucketize digitizer.
    update_registered_converter(
        FunctionTransformer, "SklearnFunctionTransformer", _same_shape, _function_converter
    )
    update_registered_converter(
        DerivedFeatures,
        "MlcDerivedFeatures",
        _derive_shape,
        _derive_converter,
        parser=_derive_parser,
    )


def _register_boosting(estimator: Any) -> None:
    package = _boosting_package(estimator)
    if package is None:
        return
    try:
        import onnxmltools  # noqa: F401
    except ImportError:
        raise StepError(
            STEP,
            f"exporting {_class_name(estimator)} needs the package onnxmltools, which is not "
            "installed",
            "pip install 'mlc[boost]'",
        ) from None
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    if package == "lightgbm":
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        converter = convert_lightgbm
    else:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

        converter = convert_xgboost
    classifier = hasattr(estimator, "predict_proba")
    update_registered_converter(
        type(estimator),
        f"Mlc{_class_name(estimator)}",
        calculate_linear_classifier_output_shapes
        if classifier
        else calculate_linear_regressor_output_shapes,
        converter,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]} if classifier else None,
    )


# ---------------------------------------------------------------------------------------------
# Building the graph


INPUT_KINDS = {"float": "tensor(float)", "double": "tensor(double)", "int64": "tensor(int64)"}


def input_kind(name: str, columns: dict[str, ColumnParams], series: pd.Series | None) -> str:
    """`int64`, `bool`, `string` or `number` for a graph input column."""
    import pandas as pd

    col = columns.get(name)
    if col is not None:
        dtype = col["dtype"]
        if dtype in ("str", "category", "datetime"):
            return "string"
        if dtype == "int" and not col["nullable"]:
            return "int64"
        if dtype == "bool" and not col["nullable"]:
            return "bool"
        return "number"
    if series is None:
        return "number"
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int64"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    return "string"


def _graph_inputs(sp: Split, frame: pd.DataFrame, features: list[str]) -> list[str]:
    """The columns the graph reads, in the order of `features` (pre-step outputs after)."""
    from sklearn.compose import ColumnTransformer

    if not sp.transforms or not (
        _class_name(sp.transforms[0][1]) == "DerivedFeatures"
        or isinstance(sp.transforms[0][1], ColumnTransformer)
    ):
        return [c for c in frame.columns]
    used: set[str] = set()
    derived = set()
    for _, step in sp.transforms:
        if _class_name(step) == "DerivedFeatures":
            for name, expr in step.derived:
                used |= _expr_names(expr) or set()
                derived.add(name)
            continue
        if isinstance(step, ColumnTransformer):
            for _, trans, cols in step.transformers_:
                if not (isinstance(trans, str) and trans == "drop"):
                    used |= {str(c) for c in cols}
            break
    used -= derived
    ordered = [c for c in features if c in used]
    return ordered + sorted(c for c in used if c not in set(ordered))


def _skl_types(names: list[str], kinds: dict[str, str], double: bool) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    number = DoubleTensorType if double else FloatTensorType
    return [
        (n, StringTensorType([None, 1]) if kinds[n] == "string" else number([None, 1]))
        for n in names
    ]


def _retype_inputs(model: Any, kinds: dict[str, str], double: bool) -> None:
    """Int and bool columns enter as int64 / bool and are cast to the graph's float type (the
    converters are built on floats, so mixed-type column groups concatenate)."""
    from onnx import TensorProto, helper

    target = TensorProto.DOUBLE if double else TensorProto.FLOAT
    graph = model.graph
    casts = []
    for inp in graph.input:
        kind = kinds.get(inp.name)
        if kind not in ("int64", "bool"):
            continue
        inner = f"{inp.name}__as_float"
        for node in graph.node:
            for k, name in enumerate(node.input):
                if name == inp.name:
                    node.input[k] = inner
        for out in graph.output:
            if out.name == inp.name:
                raise StepError(STEP, f"column '{inp.name}' passes straight to an output")
        inp.type.tensor_type.elem_type = TensorProto.INT64 if kind == "int64" else TensorProto.BOOL
        casts.append(
            helper.make_node("Cast", [inp.name], [inner], to=target, name=f"cast_{inp.name}")
        )
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def _tree_thresholds(est: Any) -> tuple[list[tuple[int, float]], bool] | None:
    """(feature, threshold) of every split, and whether the model rounds features to float32
    before comparing (sklearn's trees and forests do; HistGradientBoosting does not)."""
    import numpy as np

    if _boosting_package(est) is not None:
        from mlc.runtime.frameworks.boost import split_thresholds

        return split_thresholds(est)
    if hasattr(est, "_predictors"):
        out: list[tuple[int, float]] = []
        for per_iter in est._predictors:
            for pred in per_iter:
                nodes = pred.nodes
                sel = (nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 0)
                out += list(
                    zip(
                        nodes["feature_idx"][sel].tolist(),
                        nodes["num_threshold"][sel].tolist(),
                        strict=True,
                    )
                )
        return out, False
    trees = []
    if hasattr(est, "tree_"):
        trees = [est.tree_]
    elif hasattr(est, "estimators_"):
        trees = [
            e.tree_
            for e in np.ravel(np.asarray(est.estimators_, dtype=object))
            if hasattr(e, "tree_")
        ]
    if not trees:
        return None
    out = []
    for tree in trees:
        sel = tree.feature >= 0
        out += list(zip(tree.feature[sel].tolist(), tree.threshold[sel].tolist(), strict=True))
    return out, True


def _double_imputers(model: Any) -> None:
    """ONNX Runtime has no float64 `Imputer`: the same replacement as IsNaN/Equal + Where."""
    import math

    import numpy as np
    from onnx import helper, numpy_helper

    nodes = []
    for node in model.graph.node:
        if not (node.op_type == "Imputer" and node.domain == "ai.onnx.ml"):
            nodes.append(node)
            continue
        attrs = {a.name: a for a in node.attribute}
        fill = np.asarray(list(attrs["imputed_value_floats"].floats), dtype=np.float64)
        replaced = attrs["replaced_value_float"].f if "replaced_value_float" in attrs else math.nan
        base = node.name or node.output[0]
        fill_name = f"{base}_fill64"
        model.graph.initializer.append(numpy_helper.from_array(fill.reshape(1, -1), fill_name))
        mask = f"{base}_mask"
        if math.isnan(replaced):
            nodes.append(helper.make_node("IsNaN", [node.input[0]], [mask], name=mask))
        else:
            value = f"{base}_replaced64"
            model.graph.initializer.append(
                numpy_helper.from_array(np.asarray([replaced], dtype=np.float64), value)
            )
            nodes.append(helper.make_node("Equal", [node.input[0], value], [mask], name=mask))
        nodes.append(
            helper.make_node("Where", [mask, fill_name, node.input[0]], [node.output[0]], name=base)
        )
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _double_trees(model: Any, est: Any) -> None:
    """Give the tree ensembles the model's float64 thresholds (skl2onnx writes float32 ones
    even for double inputs, and declares outputs ONNX Runtime rejects)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    found = _tree_thresholds(est)
    trees = [n for n in model.graph.node if n.op_type.startswith("TreeEnsemble")]
    if not trees:
        return
    if found is None:
        raise StepError(STEP, f"cannot map the tree thresholds of {_class_name(est)}")
    thresholds, rounds = found
    candidates: dict[tuple[int, float], set[float]] = {}
    for f, t in thresholds:
        candidates.setdefault((int(f), float(np.float32(t))), set()).add(float(t))
    nodes = []
    for node in model.graph.node:
        if not (node.op_type.startswith("TreeEnsemble") and node.domain == "ai.onnx.ml"):
            nodes.append(node)
            continue
        attrs = {a.name: a for a in node.attribute}
        values = list(attrs["nodes_values"].floats)
        feats = list(attrs["nodes_featureids"].ints)
        modes = list(attrs["nodes_modes"].strings)
        exact = []
        for v, f, mode in zip(values, feats, modes, strict=True):
            options = candidates.get((int(f), float(np.float32(v))), set())
            exact.append(next(iter(options)) if mode != b"LEAF" and len(options) == 1 else float(v))
        node.attribute.remove(attrs["nodes_values"])
        node.attribute.append(
            helper.make_attribute(
                "nodes_values_as_tensor",
                numpy_helper.from_array(np.asarray(exact, dtype=np.float64)),
            )
        )
        if rounds:
            source = node.input[0]
            as32 = f"{node.name}_x32"
            back = f"{node.name}_x64"
            nodes.append(
                helper.make_node("Cast", [source], [as32], to=TensorProto.FLOAT, name=as32)
            )
            nodes.append(helper.make_node("Cast", [as32], [back], to=TensorProto.DOUBLE, name=back))
            node.input[0] = back
        index = 1 if node.op_type == "TreeEnsembleClassifier" else 0
        final = node.output[index]
        node.output[index] = f"{final}_f32"
        nodes.append(node)
        nodes.append(
            helper.make_node(
                "Cast", [f"{final}_f32"], [final], to=TensorProto.DOUBLE, name=f"{final}_cast"
            )
        )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    for op in model.opset_import:
        if op.domain == "ai.onnx.ml" and op.version < 3:
            op.version = 3


def _canonical(model: Any) -> Any:
    """Fixed producer fields and no doc strings: the same model gives the same bytes."""
    model.producer_name = PRODUCER
    model.producer_version = FORMAT_VERSION
    model.domain = ""
    model.model_version = 0
    model.doc_string = ""
    model.graph.doc_string = ""
    model.graph.name = "mlc_model"
    del model.metadata_props[:]
    # One entry per domain (skl2onnx and merge_models can list the default domain twice,
    # which onnxruntime's quantiser refuses).
    versions: dict[str, int] = {}
    for op in model.opset_import:
        domain = "" if op.domain == "ai.onnx" else op.domain
        versions[domain] = max(versions.get(domain, 0), op.version)
    del model.opset_import[:]
    for domain, version in sorted(versions.items()):
        entry = model.opset_import.add()
        entry.domain = domain
        entry.version = version
    for node in model.graph.node:
        node.doc_string = ""
    return model


def _opsets(opset: int) -> dict[str, int]:
    return {"": opset, "ai.onnx.ml": 3}


def _sklearn_graph(
    pipe: Any, types: list[tuple[str, Any]], opset: int, classifier_id: int | None
) -> Any:
    from skl2onnx import convert_sklearn

    options = {classifier_id: {"zipmap": False}} if classifier_id is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_sklearn(
            pipe, initial_types=types, target_opset=_opsets(opset), options=options
        )


def _default_opset(model: Any, opset: int) -> Any:
    """`model` with its default domain at `opset`: skl2onnx picks the lowest opset its nodes
    need, and merge_models wants both graphs at one version."""
    from onnx import version_converter

    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current == opset:
        return model
    try:
        return version_converter.convert_version(model, opset)
    except Exception as exc:  # the converter raises bare RuntimeErrors naming the node
        raise StepError(
            STEP,
            f"cannot move the preprocessing graph from opset {current} to {opset}: {exc}"[:400],
            "set deployment.edge.opset to the opset the graph was built with",
        ) from None


MLP_OUTPUTS = {
    "classification": ("label", "probabilities", "label_index", "classes"),
    "regression": ("variable",),
}
"""Tensor names the MLP head adds after the merged graph: the public outputs and their helpers."""


def _rename_tensors(graph: Any, mapping: dict[str, str]) -> None:
    """Rename tensors in `graph` and in the subgraphs that may read them from the outer scope."""
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename_tensors(sub, mapping)
    for items in (graph.output, graph.value_info, graph.initializer):
        for item in items:
            item.name = mapping.get(item.name, item.name)


def _free_head_names(prep: Any, task: str) -> None:
    """Move the preprocessing graph's tensors off the names the MLP head defines.

    skl2onnx names intermediate tensors `variable`, `variable1`, ... and the regression head's
    output is `variable`: two definitions of one name make an invalid graph.
    """
    graph = prep.graph
    used = {n for node in graph.node for n in (*node.input, *node.output)}
    used |= {i.name for i in (*graph.input, *graph.output, *graph.initializer)}
    reserved = MLP_OUTPUTS["classification" if task == "classification" else "regression"]
    clash = sorted(i.name for i in graph.input if i.name in reserved)
    if clash:
        raise StepError(
            STEP,
            f"input column '{clash[0]}' has a name the exported MLP graph defines itself",
            "rename the column; names the graph defines after the network: " + ", ".join(reserved),
        )
    mapping = {}
    for name in reserved:
        if name in used:
            fresh, k = f"prep_{name}", 1
            while fresh in used:
                fresh, k = f"prep_{name}_{k}", k + 1
            used.add(fresh)
            mapping[name] = fresh
    if mapping:
        _rename_tensors(graph, mapping)


def _torch_net(est: Any, opset: int) -> Any:
    """The Lightning MLP's network: input `features`, output `logits`."""
    import tempfile

    import onnx
    import torch

    net = est.module_
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "net.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    net,
                    (torch.zeros(1, int(est.n_features_in_)),),
                    str(path),
                    dynamo=False,
                    input_names=["features"],
                    output_names=["logits"],
                    dynamic_axes={"features": {0: "N"}, "logits": {0: "N"}},
                    opset_version=opset,
                )
        except Exception as exc:  # the exporter raises many types; the message names the cause
            raise StepError(
                STEP,
                f"torch.onnx.export of the MLP failed: {type(exc).__name__}: {exc}"[:500],
                "the TorchScript exporter (dynamo=False) is used; onnxscript is not required",
            ) from None
        return onnx.load_from_string(path.read_bytes())


def _mlp_graph(prep: Any, est: Any, opset: int, task: str) -> Any:
    import numpy as np
    import onnx
    from onnx import compose, helper, numpy_helper

    if _class_name(est) == "KerasEstimator":
        net_model = onnx.load_from_string(est.onnx_network(opset, STEP))
    else:
        net_model = _torch_net(est, opset)
    prep = _default_opset(prep, opset)
    net_model = _default_opset(net_model, opset)
    _free_head_names(prep, task)
    prep_out = prep.graph.output[0].name
    ir = min(prep.ir_version, net_model.ir_version)
    prep.ir_version = ir
    net_model.ir_version = ir
    # The preprocessing graph imports the default domain at `opset` too; merge_models wants
    # the two graphs' common domains at one version.
    merged = compose.merge_models(prep, net_model, io_map=[(prep_out, "features")], prefix2="net_")
    graph = merged.graph
    logits = "net_logits"
    del graph.output[:]
    if task == "classification":
        classes = np.asarray(est.classes_)
        if classes.dtype.kind in "iub":
            table = numpy_helper.from_array(classes.astype(np.int64), "classes")
            label_type = onnx.TensorProto.INT64
        else:
            table = numpy_helper.from_array(classes.astype(str).astype(object), "classes")
            label_type = onnx.TensorProto.STRING
        graph.initializer.append(table)
        # A Keras network with a softmax head gives probabilities already.
        head = (
            helper.make_node("Identity", [logits], ["probabilities"], name="probabilities")
            if getattr(est, "probabilities_", False)
            else helper.make_node("Softmax", [logits], ["probabilities"], axis=1, name="softmax")
        )
        graph.node.extend(
            [
                head,
                helper.make_node(
                    "ArgMax", [logits], ["label_index"], axis=1, keepdims=0, name="argmax"
                ),
                helper.make_node(
                    "Gather", ["classes", "label_index"], ["label"], axis=0, name="label_lookup"
                ),
            ]
        )
        graph.output.extend(
            [
                helper.make_tensor_value_info("label", label_type, [None]),
                helper.make_tensor_value_info(
                    "probabilities", onnx.TensorProto.FLOAT, [None, len(classes)]
                ),
            ]
        )
    else:
        graph.node.append(helper.make_node("Identity", [logits], ["variable"], name="prediction"))
        graph.output.append(
            helper.make_tensor_value_info("variable", onnx.TensorProto.FLOAT, [None, 1])
        )
    return merged


def build_graph(
    sp: Split, inputs: list[str], kinds: dict[str, str], opset: int, task: str, double: bool
) -> Any:
    """The ONNX model for the split pipeline (canonical bytes)."""
    from sklearn.pipeline import Pipeline

    _register_converters()
    est = sp.estimator
    _register_boosting(est)
    types = _skl_types(inputs, kinds, double)
    try:
        if _class_name(est) in NETWORKS:
            if not sp.transforms:
                raise StepError(STEP, "the network's pipeline has no preprocessing to export")
            prep = _sklearn_graph(Pipeline(list(sp.transforms)), types, opset, None)
            if double:
                raise StepError(STEP, "the network graph is float32 only")
            model = _mlp_graph(prep, est, opset, task)
        else:
            pipe = Pipeline([*sp.transforms, ("model", est)])
            classifier = id(est) if task == "classification" else None
            model = _sklearn_graph(pipe, types, opset, classifier)
            if double:
                _double_imputers(model)
                _double_trees(model, est)
    except StepError:
        raise
    except Exception as exc:  # converter errors: name the class and what skl2onnx said
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StepError(
            STEP,
            f"converting {_class_name(est)} to ONNX failed: {type(exc).__name__}: {text}"[:600],
            SUPPORTED_HINT,
        ) from None
    _retype_inputs(model, kinds, double)
    return _canonical(model)


# ---------------------------------------------------------------------------------------------
# Scoring: feeds, sessions, parity


def feeds(frame: pd.DataFrame, spec: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """Graph inputs from a DataFrame: each column as an [N, 1] array of the input's type."""
    import numpy as np
    import pandas as pd

    out = {}
    for item in spec:
        name, kind = item["name"], item["type"]
        if name not in frame.columns:
            raise StepError(
                STEP,
                f"column '{name}' is missing",
                "columns the graph reads: " + ", ".join(i["name"] for i in spec),
            )
        col = frame[name]
        if kind == "tensor(string)":
            values = np.asarray(
                [("" if v is None or (isinstance(v, float) and v != v) else str(v)) for v in col],
                dtype=object,
            )
        elif kind == "tensor(int64)":
            values = pd.to_numeric(col).to_numpy(dtype=np.int64)
        elif kind == "tensor(bool)":
            values = col.to_numpy(dtype=bool)
        elif kind == "tensor(double)":
            values = pd.to_numeric(col).to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = (
                pd.to_numeric(col).to_numpy(dtype=np.float64, na_value=np.nan).astype(np.float32)
            )
        out[name] = values.reshape(-1, 1)
    return out


def session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _outputs(task: str, result: list[Any], names: list[str]) -> dict[str, np.ndarray]:
    import numpy as np

    got = dict(zip(names, result, strict=True))
    if task == "classification":
        return {
            "label": np.asarray(got["label"]).ravel(),
            "proba": np.asarray(got["probabilities"], dtype=np.float64),
        }
    return {"prediction": np.asarray(got["variable"], dtype=np.float64).ravel()}


def _reference(model: Any, frame: pd.DataFrame, task: str) -> dict[str, np.ndarray]:
    import numpy as np

    if task == "classification":
        return {
            "label": np.asarray(model.predict(frame)).ravel(),
            "proba": np.asarray(model.predict_proba(frame), dtype=np.float64),
        }
    return {"prediction": np.asarray(model.predict(frame), dtype=np.float64).ravel()}


def _same_labels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import numpy as np

    if a.dtype.kind in "iufb" and b.dtype.kind in "iufb":
        return np.asarray(a == b)
    return np.asarray(a.astype(str) == b.astype(str))


def compare(
    task: str,
    ref: dict[str, np.ndarray],
    got: dict[str, np.ndarray],
    atol: float,
    rtol: float,
    label_agreement: float | None = None,
) -> dict[str, Any]:
    """Parity numbers and the failing rows (indices into the rows compared).

    Classification fails a row whose label differs (when `label_agreement` is None) or whose
    largest |Δ probability| exceeds `atol`; with `label_agreement`, labels may differ on up to
    that share of rows. Regression fails a row when |Δ| > atol + rtol * |original|.
    """
    import numpy as np

    if task == "classification":
        same = _same_labels(ref["label"], got["label"])
        delta = np.abs(ref["proba"] - got["proba"]).max(axis=1)
        bad_proba = ~(delta <= atol)
        agreement = float(same.mean()) if len(same) else 1.0
        if label_agreement is None:
            failing = np.flatnonzero(~same | bad_proba)
            passed = len(failing) == 0
        else:
            failing = np.flatnonzero(bad_proba | ~same)
            passed = bool(not bad_proba.any() and agreement >= label_agreement)
        return {
            "passed": passed,
            "rows": len(same),
            "label_agreement": agreement,
            "labels_differ": int((~same).sum()),
            "max_abs_proba_diff": float(delta.max()) if len(delta) else 0.0,
            "failing": failing.tolist(),
        }
    y = ref["prediction"]
    diff = np.abs(y - got["prediction"])
    bound = atol + rtol * np.abs(y)
    failing = np.flatnonzero(~(diff <= bound))
    rel = diff / np.maximum(np.abs(y), np.finfo(np.float64).tiny)
    return {
        "passed": len(failing) == 0,
        "rows": len(y),
        "max_abs_diff": float(diff.max()) if len(diff) else 0.0,
        "max_rel_diff": float(rel.max()) if len(rel) else 0.0,
        "failing": failing.tolist(),
    }


# ---------------------------------------------------------------------------------------------
# Threshold probes


def _selected(step: Any, width: int) -> list[int] | None:
    support = getattr(step, "get_support", None)
    if support is None:
        return None
    return [int(i) for i in support(indices=True)]


_INVERTIBLE = ("SimpleImputer", "StandardScaler", "MinMaxScaler", "RobustScaler")


def _feature_sources(sp: Split) -> dict[int, tuple[str, Callable[[float], float]]]:
    """Estimator input index -> (raw column, threshold -> raw value) where the transform is
    the identity or a scaler of that one column."""
    import numpy as np
    from sklearn.compose import ColumnTransformer

    if any(stage["kind"] == "frame" for stage in sp.prestep):
        return {}
    position = next(
        (k for k, (_, s) in enumerate(sp.transforms) if isinstance(s, ColumnTransformer)), None
    )
    if position is None:
        return {}
    ct = sp.transforms[position][1]
    # Not raw columns: thresholds on them do not map to one input value.
    skip = set(sp.derived)
    for stage in sp.prestep:
        if stage["kind"] == "columns":
            skip |= set(stage["outputs"])
    mapping: dict[int, tuple[str, Callable[[float], float]]] = {}
    width_total = 0
    for name, trans, cols in ct.transformers_:
        where = ct.output_indices_.get(name)
        if where is None or (isinstance(trans, str) and trans == "drop"):
            continue
        start, width = int(where.start), int(where.stop - where.start)
        width_total = max(width_total, int(where.stop))
        chain = [] if isinstance(trans, str) else _chain(trans)
        names = [str(c) for c in cols]
        invertible = all(
            _class_name(p) in _INVERTIBLE
            or (_class_name(p) == "FunctionTransformer" and p.func is None)
            for _, p in chain
        )
        if not invertible or width != len(names):
            continue
        for j, col in enumerate(names):
            if col in skip:
                continue

            def inverse(t: float, j: int = j, chain: list[Any] = chain, n: int = width) -> float:
                vec = np.zeros((1, n))
                vec[0, j] = t
                for _, p in reversed(chain):
                    # An imputer leaves present values as they are: nothing to undo.
                    if _class_name(p) != "SimpleImputer" and hasattr(p, "inverse_transform"):
                        vec = np.asarray(p.inverse_transform(vec), dtype=np.float64)
                return float(vec[0, j])

            mapping[start + j] = (col, inverse)
    for _, step in sp.transforms[position + 1 :]:
        chosen = _selected(step, width_total)
        if chosen is None:
            return {}
        mapping = {k: mapping[i] for k, i in enumerate(chosen) if i in mapping}
    return mapping


def probe_rows(
    sp: Split, base: pd.DataFrame, kinds: dict[str, str]
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Rows at each mapped split threshold and its float64/float32 neighbours."""
    import numpy as np
    import pandas as pd

    found = _tree_thresholds(sp.estimator)
    if found is None or len(base) == 0:
        return base.iloc[:0], []
    sources = _feature_sources(sp)
    pairs = sorted({(int(f), float(t)) for f, t in found[0] if int(f) in sources})
    values: list[tuple[str, float]] = []
    for f, t in pairs:
        col, inverse = sources[f]
        raw = inverse(t)
        if not np.isfinite(raw):
            continue
        if kinds.get(col) == "int64":
            candidates = {float(np.floor(raw)), float(np.ceil(raw))}
        else:
            r32 = np.float32(raw)
            candidates = {
                raw,
                float(np.nextafter(raw, -np.inf)),
                float(np.nextafter(raw, np.inf)),
                float(r32),
                float(np.nextafter(r32, np.float32(-np.inf))),
                float(np.nextafter(r32, np.float32(np.inf))),
            }
        values += [(col, v) for v in sorted(candidates)]
    if len(values) > PROBE_LIMIT:
        stride = len(values) / PROBE_LIMIT
        values = [values[int(k * stride)] for k in range(PROBE_LIMIT)]
    if not values:
        return base.iloc[:0], []
    rows = base.iloc[[k % len(base) for k in range(len(values))]].reset_index(drop=True).copy()
    info = []
    for k, (col, v) in enumerate(values):
        if kinds.get(col) == "int64":
            rows.loc[k, col] = int(v)
        else:
            if not pd.api.types.is_float_dtype(rows[col]):
                rows[col] = rows[col].astype(np.float64)
            rows.loc[k, col] = v
        info.append({"column": col, "value": v})
    return rows, info


# ---------------------------------------------------------------------------------------------
# Latency


def _median_ms(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 4)


def latency(
    model: Any,
    sess: Any,
    frame: pd.DataFrame,
    prepared: pd.DataFrame,
    spec: list[dict[str, str]],
    task: str,
    single_runs: int = SINGLE_RUNS,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, Any]:
    """Median milliseconds: single-row and batch, for the graph and the original model."""
    import numpy as np

    if len(frame) == 0:
        return {}
    predict = model.predict_proba if task == "classification" else model.predict
    idx = np.arange(batch_rows) % len(frame)
    batch_raw = frame.iloc[idx]
    batch_feeds = feeds(prepared.iloc[idx], spec)
    singles = [feeds(prepared.iloc[[k % len(prepared)]], spec) for k in range(min(single_runs, 50))]
    raw_singles = [frame.iloc[[k % len(frame)]] for k in range(min(single_runs, 50))]
    counter = iter(range(10**9))

    def onnx_one() -> None:
        sess.run(None, singles[next(counter) % len(singles)])

    def model_one() -> None:
        predict(raw_singles[next(counter) % len(raw_singles)])

    return {
        "single_row_runs": single_runs,
        "batch_rows": batch_rows,
        "onnx_single_row_ms": _median_ms(onnx_one, single_runs),
        "model_single_row_ms": _median_ms(model_one, single_runs),
        "onnx_batch_ms": _median_ms(lambda: sess.run(None, batch_feeds), 3),
        "model_batch_ms": _median_ms(lambda: predict(batch_raw), 3),
    }


# ---------------------------------------------------------------------------------------------
# The export


@dataclass
class Attempt:
    model_bytes: bytes
    precision: str
    parity: dict[str, Any]
    probes: list[dict[str, Any]]
    failing_detail: list[str]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _describe(
    task: str,
    ref: dict[str, Any],
    got: dict[str, Any],
    failing: list[int],
    n_test: int,
    probes: list[dict[str, Any]],
) -> list[str]:
    lines = []
    for i in failing[:5]:
        if i < n_test:
            where = f"test row {i}"
        else:
            probe = probes[i - n_test]
            where = f"probe row {i - n_test} ({probe['column']}={probe['value']!r})"
        if task == "classification":
            before = [round(float(p), 8) for p in ref["proba"][i]]
            after = [round(float(p), 8) for p in got["proba"][i]]
            lines.append(
                f"{where}: original label {_plain(ref['label'][i])!r} proba {before}, "
                f"exported label {_plain(got['label'][i])!r} proba {after}"
            )
        else:
            lines.append(
                f"{where}: original {float(ref['prediction'][i])!r}, "
                f"exported {float(got['prediction'][i])!r}"
            )
    return lines


def _attempt(
    model: Any,
    sp: Split,
    frame: pd.DataFrame,
    inputs: list[str],
    kinds: dict[str, str],
    opset: int,
    task: str,
    parity: ParityParams,
    double: bool,
    probes: tuple[pd.DataFrame, list[dict[str, Any]]],
) -> Attempt:
    import pandas as pd

    onnx_model = build_graph(sp, inputs, kinds, opset, task, double)
    data = onnx_model.SerializeToString()
    spec = input_spec(onnx_model)
    try:
        sess = session(data)
    except Exception as exc:  # ORT rejects a graph the converters built: name what it said
        raise StepError(
            STEP,
            f"ONNX Runtime cannot load the exported graph ({'float64' if double else 'float32'}): "
            f"{str(exc).splitlines()[0][:300]}",
            SUPPORTED_HINT,
        ) from None
    probe_frame, probe_info = probes
    rows = (
        pd.concat([frame, probe_frame], ignore_index=True)
        if len(probe_frame)
        else frame.reset_index(drop=True)
    )
    ref = _reference(model, rows, task)
    prepared = apply_prestep(sp.prestep, rows)
    got = _outputs(
        task, sess.run(None, feeds(prepared, spec)), [o.name for o in sess.get_outputs()]
    )
    atol = parity["proba_atol"] if task == "classification" else parity["atol"]
    result = compare(task, ref, got, atol, parity["rtol"])
    result["test_rows"] = len(frame)
    result["probe_rows"] = len(probe_frame)
    result["probe_columns"] = sorted({p["column"] for p in probe_info})
    detail = _describe(task, ref, got, result["failing"], len(frame), probe_info)
    result["failing"] = result["failing"][:5]
    return Attempt(data, "float64" if double else "float32", result, probe_info, detail)


def input_spec(onnx_model: Any) -> list[dict[str, str]]:
    from onnx import TensorProto

    names = {
        TensorProto.FLOAT: "tensor(float)",
        TensorProto.DOUBLE: "tensor(double)",
        TensorProto.INT64: "tensor(int64)",
        TensorProto.BOOL: "tensor(bool)",
        TensorProto.STRING: "tensor(string)",
    }
    return [
        {"name": i.name, "type": names.get(i.type.tensor_type.elem_type, "unknown")}
        for i in onnx_model.graph.input
    ]


def _quantize(path: Path, out_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantiser logs a "consider pre-processing" advice on the root logger on every call.
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(path), str(out_path), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def export_package(
    model: Any,
    frame: pd.DataFrame,
    *,
    task: str,
    features: list[str],
    edge: EdgeParams,
    contract_columns: dict[str, ColumnParams],
    location: str,
    model_info: dict[str, Any] | None = None,
    precision: str = "auto",
    single_runs: int = SINGLE_RUNS,
) -> dict[str, Any]:
    """Convert, gate and write the package folder at `location`; return the report.

    `precision`: `auto` (float32, float64 when float32 fails parity), `float32` or `float64`.
    On a parity failure nothing is written at `location` and the `StepError` names the rows.
    """
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise StepError(
            STEP,
            "test split lacks feature column(s) " + ", ".join(missing),
            "columns: " + ", ".join(map(str, frame.columns)),
        )
    frame = frame[features].reset_index(drop=True)
    text = {c for c in features if input_kind(c, contract_columns, frame[c]) == "string"}
    sp = split(model, text)
    prepared = apply_prestep(sp.prestep, frame.iloc[:5])
    inputs = _graph_inputs(sp, prepared, features)
    kinds = {c: input_kind(c, contract_columns, prepared.get(c)) for c in inputs}
    probes = (
        probe_rows(sp, frame, kinds)
        if not sp.prestep or all(s["kind"] == "columns" for s in sp.prestep)
        else (frame.iloc[:0], [])
    )
    opset = int(edge["opset"])
    parity = edge["parity"]
    tries = {"auto": [False, True], "float32": [False], "float64": [True]}[precision]
    if _class_name(sp.estimator) in NETWORKS:
        tries = [False]
    attempts: list[Attempt] = []
    errors: list[str] = []
    for double in tries:
        try:
            attempt = _attempt(model, sp, frame, inputs, kinds, opset, task, parity, double, probes)
        except StepError as exc:
            if not attempts and double is tries[-1]:
                raise
            errors.append(str(exc).splitlines()[0])
            continue
        attempts.append(attempt)
        if attempt.parity["passed"]:
            break
    chosen = attempts[-1] if attempts else None
    if chosen is None or not chosen.parity["passed"]:
        best = chosen or attempts[0]
        p = best.parity
        numbers = (
            f"max |Δ probability| {p['max_abs_proba_diff']:.3g}, "
            f"labels differ on {p['labels_differ']} row(s)"
            if task == "classification"
            else f"max |Δ| {p['max_abs_diff']:.3g}, max relative {p['max_rel_diff']:.3g}"
        )
        tried = ", ".join(a.precision for a in attempts)
        raise StepError(
            STEP,
            f"the exported graph does not match the model ({tried}; {p['rows']} rows incl. "
            f"{p['probe_rows']} threshold probes): {numbers}; "
            + "; ".join(best.failing_detail)
            + (f" [{'; '.join(errors)}]" if errors else ""),
            "the model is not exported; raise deployment.edge.parity tolerances only if "
            "the difference is acceptable",
        )
    location_path = Path(location)
    parent = location_path.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{location_path.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        report = _write(
            tmp, model, sp, frame, inputs, kinds, attempts, task, edge, model_info, single_runs
        )

        if location_path.exists():
            trash = parent / f".{location_path.name}.old-{uuid.uuid4().hex[:12]}"
            location_path.rename(trash)
            tmp.rename(location_path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(location_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(
    tmp: Path,
    model: Any,
    sp: Split,
    frame: pd.DataFrame,
    inputs: list[str],
    kinds: dict[str, str],
    attempts: list[Attempt],
    task: str,
    edge: EdgeParams,
    model_info: dict[str, Any] | None,
    single_runs: int,
) -> dict[str, Any]:
    import onnx

    chosen = attempts[-1]

    (tmp / "model.onnx").write_bytes(chosen.model_bytes)
    onnx_model = onnx.load_from_string(chosen.model_bytes)
    spec = input_spec(onnx_model)
    sess = session(chosen.model_bytes)
    prepared = apply_prestep(sp.prestep, frame)
    report: dict[str, Any] = {
        "format": "onnx",
        "format_version": FORMAT_VERSION,
        "task": task,
        "model": dict(model_info or {}),
        "opset": int(edge["opset"]),
        "precision": chosen.precision,
        "inputs": spec,
        "input_kinds": {c: kinds[c] for c in inputs},
        "outputs": [{"name": o.name, "type": o.type} for o in sess.get_outputs()],
        "transforms_converted": sp.converted,
        "transforms_prestep": sp.prestepped,
        "prestep": "prestep.json" if sp.prestep else None,
        "estimator": _class_name(sp.estimator),
        "parity": chosen.parity,
        # float32 first: a float64 graph is shipped only when float32 failed parity.
        "attempts": [
            {"precision": a.precision, **{k: v for k, v in a.parity.items() if k != "failing"}}
            for a in attempts
        ],
    }
    if sp.prestep:
        (tmp / "prestep.json").write_text(
            json.dumps({"stages": sp.prestep}, indent=2, sort_keys=True) + "\n"
        )
    if task == "classification":
        report["classes"] = [
            c.item() if hasattr(c, "item") else c for c in getattr(sp.estimator, "classes_", [])
        ]
    if edge["quantize"] == "dynamic":
        _quantize(tmp / "model.onnx", tmp / "model.quant.onnx")
        qbytes = (tmp / "model.quant.onnx").read_bytes()
        qsess = session(qbytes)
        ref = _reference(model, frame, task)
        got = _outputs(
            task, qsess.run(None, feeds(prepared, spec)), [o.name for o in qsess.get_outputs()]
        )
        pp = edge["parity"]
        if task == "classification":
            q = compare(
                task, ref, got, pp["quantized_proba_atol"], 0.0, pp["quantized_label_agreement"]
            )
        else:
            q = compare(task, ref, got, pp["quantized_rtol"], pp["quantized_rtol"])
        q["failing"] = q["failing"][:5]
        if not q["passed"]:
            raise StepError(
                STEP,
                "the dynamically quantised graph does not match the model: "
                + json.dumps({k: v for k, v in q.items() if k != "failing"}, sort_keys=True),
                "raise deployment.edge.parity.quantized_* or set deployment.edge.quantize: none",
            )
        report["quantized"] = {
            "method": "dynamic int8 (onnxruntime.quantization.quantize_dynamic)",
            "parity": q,
            "bytes": len(qbytes),
        }
    report["bytes"] = {"model.onnx": len(chosen.model_bytes)}
    if "quantized" in report:
        report["bytes"]["model.quant.onnx"] = report["quantized"]["bytes"]
    report["latency"] = latency(model, sess, frame, prepared, spec, task, single_runs=single_runs)
    report["sha256"] = {
        p.name: _sha_file(p)
        for p in sorted(tmp.iterdir())
        if p.name not in ("export.json", artifacts.META)
    }
    (tmp / "export.json").write_text(
        json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
    )
    artifacts.write_meta(
        str(tmp),
        "model",
        content_hash=report["sha256"]["model.onnx"],
        format="onnx",
        precision=chosen.precision,
        model_name=(model_info or {}).get("model_name"),
        version=(model_info or {}).get("version"),
    )
    return report


# ---------------------------------------------------------------------------------------------
# Scoring a package


def load_package(folder: str | Path) -> Callable[[pd.DataFrame], dict[str, Any]]:
    """A scorer for a package folder: DataFrame of raw columns -> `{"label", "proba"}`
    (classification) or `{"prediction"}`; runs the pre-step, then the graph."""
    root = Path(folder)
    try:
        report = json.loads((root / "export.json").read_text())
        data = (root / "model.onnx").read_bytes()
    except OSError as exc:
        raise StepError(
            STEP, f"{root} is not an export package: {exc}", "run the export step"
        ) from None
    stages = (
        json.loads((root / "prestep.json").read_text())["stages"] if report.get("prestep") else []
    )
    sess = session(data)
    spec = report["inputs"]
    names = [o.name for o in sess.get_outputs()]
    task = report["task"]

    def score(frame: pd.DataFrame) -> dict[str, Any]:
        prepared = apply_prestep(stages, frame)
        return _outputs(task, sess.run(None, feeds(prepared, spec)), names)

    return score
