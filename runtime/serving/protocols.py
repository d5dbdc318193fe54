"""Request and response shapes of the three protocols, over one columnar form.

Every protocol's body becomes `{column: [value per row]}` (the raw input columns) and every
answer is built from the same `Outputs`: the Open Inference Protocol v2 (KServe, MLServer,
Triton), KServe v1 (`instances`), and the MLflow scoring server (`/invocations`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlc.runtime.serving.guards import Rejection

if TYPE_CHECKING:
    from mlc.runtime.serving.models import Outputs, Track

Columns = dict[str, list[Any]]

V2_DATATYPES = {
    "int": "INT64",
    "float": "FP64",
    "bool": "BOOL",
    "str": "BYTES",
    "category": "BYTES",
    "datetime": "BYTES",
}
_INTS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOATS = {"FP16", "FP32", "FP64"}
_ACCEPTED = {
    "int": _INTS,
    "float": _INTS | _FLOATS,
    "bool": {"BOOL"},
    "str": {"BYTES"},
    "category": {"BYTES"} | _INTS | _FLOATS | {"BOOL"},
    "datetime": {"BYTES"},
}
KNOWN_DATATYPES = _INTS | _FLOATS | {"BOOL", "BYTES"}


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejection(400, f"the request body is not JSON: {exc}", "json") from None
    except RecursionError:
        # no inference body nests this deep; the parser's stack gives out before the size limit
        raise Rejection(400, "the request body nests too deeply to be a request", "json") from None


def _bad(message: str, rule: str = "shape") -> Rejection:
    return Rejection(400, message, rule)


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise _bad(f"input '{name}': 'data' must be a list")
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            flat.extend(_flatten(item, name))
        else:
            flat.append(item)
    return flat


def v2_inputs(doc: Any, columns: Mapping[str, Any]) -> tuple[Columns, int, str | None]:
    """The columns of a v2 infer request, its row count and its `id`."""
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise _bad("a v2 infer request needs a non-empty 'inputs' list", "json")
    result: Columns = {}
    rows: int | None = None
    for i, tensor in enumerate(doc["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise _bad(f"inputs[{i}] must be an object with a 'name'")
        name = tensor["name"]
        shape, datatype = tensor.get("shape"), tensor.get("datatype")
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
            or (len(shape) == 2 and shape[1] != 1)
        ):
            raise _bad(f"input '{name}': shape {shape!r} is not [n] or [n, 1]")
        if datatype not in KNOWN_DATATYPES:
            raise _bad(f"input '{name}': datatype {datatype!r} is not a v2 datatype", "datatype")
        col = columns.get(name)
        if col is not None and datatype not in _ACCEPTED[col["dtype"]]:
            raise Rejection(
                422,
                f"input '{name}': datatype {datatype} does not carry dtype {col['dtype']} "
                f"(send {V2_DATATYPES[col['dtype']]})",
                "dtype",
                [{"input": name, "row": None, "rule": "dtype"}],
            )
        data = _flatten(tensor.get("data"), name)
        if len(data) != shape[0]:
            raise _bad(f"input '{name}': {len(data)} values for shape {shape}")
        if rows is not None and shape[0] != rows:
            raise _bad(f"input '{name}': {shape[0]} rows where other inputs have {rows}")
        rows = shape[0]
        result[name] = data
    request_id = doc.get("id")
    return result, rows or 0, None if request_id is None else str(request_id)


def _records(records: Any, what: str) -> tuple[Columns, int]:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise _bad(f"'{what}' must be a list of objects (one per row)", "json")
    names: list[str] = []
    for record in records:
        names.extend(k for k in record if k not in names)
    # A column a row leaves out is null in that row (the guards then name it).
    return {n: [r.get(n) for r in records] for n in names}, len(records)


def _split(doc: Any, what: str) -> tuple[Columns, int]:
    if not isinstance(doc, dict) or not isinstance(doc.get("columns"), list):
        raise _bad(f"'{what}' needs 'columns' and 'data'", "json")
    names = [str(c) for c in doc["columns"]]
    data = doc.get("data")
    if not isinstance(data, list) or not all(
        isinstance(r, list) and len(r) == len(names) for r in data
    ):
        raise _bad(f"'{what}.data' must be rows of {len(names)} values", "shape")
    return {n: [r[i] for r in data] for i, n in enumerate(names)}, len(data)


def v1_inputs(doc: Any, features: Sequence[str]) -> tuple[Columns, int]:
    """KServe v1 `instances`: objects by column, or lists in the features' order."""
    if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
        raise _bad("a v1 predict request needs an 'instances' list", "json")
    instances = doc["instances"]
    if instances and all(isinstance(r, list) for r in instances):
        return _split({"columns": list(features), "data": instances}, "instances")
    return _records(instances, "instances")


def mlflow_inputs(doc: Any) -> tuple[Columns, int]:
    """MLflow `/invocations`: `dataframe_split`, `dataframe_records` or `inputs`."""
    if not isinstance(doc, dict):
        raise _bad("the body must be a JSON object", "json")
    keys = [k for k in ("dataframe_split", "dataframe_records", "inputs", "instances") if k in doc]
    if len(keys) != 1:
        raise _bad(
            "the body needs exactly one of dataframe_split, dataframe_records, inputs, instances",
            "json",
        )
    key = keys[0]
    value = doc[key]
    if key == "dataframe_split":
        return _split(value, key)
    if key == "inputs" and isinstance(value, dict):
        cols = {str(k): v if isinstance(v, list) else [v] for k, v in value.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise _bad("'inputs' columns have different lengths", "shape")
        return cols, lengths.pop() if lengths else 0
    return _records(value, key)


def _label_datatype(values: Sequence[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def _finite(values: Sequence[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def v2_outputs(out: Outputs, track: Track, rows: int) -> list[dict[str, Any]]:
    if out.label is not None and out.proba is not None:
        labels = out.label
        return [
            {
                "name": "label",
                "shape": [rows],
                "datatype": _label_datatype(labels),
                "data": labels,
            },
            {
                "name": "probabilities",
                "shape": [rows, len(track.classes)],
                "datatype": "FP64",
                "data": _finite([float(v) for v in out.proba.ravel()]),
                "parameters": {"classes": track.classes},
            },
        ]
    return [
        {
            "name": "prediction",
            "shape": [rows],
            "datatype": "FP64",
            "data": _finite(out.prediction or []),
        }
    ]


def simple_outputs(out: Outputs) -> dict[str, Any]:
    """`{"predictions": [...]}` (labels or values) for v1 and MLflow; classifiers add the
    probabilities in class order (`probabilities`)."""
    doc: dict[str, Any] = {"predictions": out.values()}
    if out.proba is not None:
        doc["probabilities"] = [_finite([float(v) for v in row]) for row in out.proba]
    return doc


def metadata(
    name: str,
    versions: list[str],
    columns: Mapping[str, Any],
    features: Sequence[str],
    classes: Sequence[Any],
) -> dict[str, Any]:
    """v2 model metadata: raw input columns, each `[-1, 1]`, and the outputs."""
    outputs = (
        [
            {"name": "label", "datatype": _label_datatype(classes), "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, -1]},
        ]
        if classes
        else [{"name": "prediction", "datatype": "FP64", "shape": [-1]}]
    )
    return {
        "name": name,
        "versions": versions,
        "platform": "mlc",
        "inputs": [
            {"name": f, "datatype": V2_DATATYPES[columns[f]["dtype"]], "shape": [-1, 1]}
            for f in features
        ],
        "outputs": outputs,
    }
