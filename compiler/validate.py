"""Validation: plain spec data -> a typed `Spec`, every problem a located diagnostic."""

from __future__ import annotations

import types
import typing
from collections.abc import Collection, Iterable
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, TypeAdapter, ValidationError

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, did_you_mean
from mlc.compiler.estimators import Problem, check_params, lookup
from mlc.compiler.load import LoadedSpec
from mlc.compiler.passes.secrets import find_secret, redact, scan
from mlc.compiler.sourcemap import KeyPath, SourceMap, dotted
from mlc.specs import Spec

_CODES = {
    "extra_forbidden": "MLC101",
    "missing": "MLC102",
    "union_tag_not_found": "MLC102",
    "literal_error": "MLC103",
    "union_tag_invalid": "MLC103",
    "enum": "MLC103",
    "value_error": "MLC104",
    "string_pattern_mismatch": "MLC107",
}


def _code(error_type: str) -> str:
    if error_type in _CODES:
        return _CODES[error_type]
    if error_type.startswith(("greater_", "less_", "too_", "multiple_of")):
        return "MLC106"
    return "MLC105"


def validate_spec(loaded: LoadedSpec) -> Spec:
    """Build the typed spec; raise `DiagnosticError` listing every problem, located.

    Schema errors in one section do not hide the rest: the sections that parsed still go
    through the cross-field rules that read only them.
    """
    refused, secrets = secret_diagnostics(loaded)
    try:
        spec = Spec.model_validate(loaded.data)
    except ValidationError as exc:
        errors = pydantic_diagnostics(exc, loaded.data, loaded.source_map, Spec)
        partial, parsed = _parsed_fields(loaded.data)
        errors.extend(_rule_diagnostics(partial, loaded, parsed))
        if "training" in parsed:
            errors.extend(_param_diagnostics(partial, loaded, "tuning" in parsed))
        raise DiagnosticError([d.redacted(secrets) for d in [*refused, *errors]]) from None
    errors = [*refused, *_rule_diagnostics(spec, loaded), *_param_diagnostics(spec, loaded)]
    if errors:
        raise DiagnosticError([d.redacted(secrets) for d in errors])
    return spec


def secret_diagnostics(loaded: LoadedSpec) -> tuple[list[Diagnostic], set[str]]:
    """Literal secrets anywhere in the spec (MLC610) and environment values copied into it
    (MLC615), each an error; and the suspected values, for redacting every other diagnostic.

    Both are refused rather than warned about: whatever the spec holds reaches `ir.json`, the
    pipeline package, Terraform and the model card.
    """
    smap = loaded.source_map
    out: list[Diagnostic] = []
    secrets: set[str] = set()
    for found in scan(loaded.data):
        secrets.add(found.value)
        shown = redact(found.value)
        path = (*found.path[:-1], shown) if found.in_key else found.path
        out.append(
            Diagnostic(
                "MLC610",
                f"literal secret in the spec: {found.kind} ({shown}); "
                "secrets are never copied into outputs",
                smap.locate(found.path, at_key=found.in_key),
                "keep it in a secret manager and name it by reference under security.secrets, "
                "e.g. 'DB_PASSWORD: vault:secret/data/app#db_password' (targets mount it; "
                "steps read it from the environment)",
                path=dotted(path),
            )
        )
    for path, names in sorted(loaded.environment.items(), key=lambda item: dotted(item[0])):
        if path[:2] == ("security", "secrets"):
            continue
        variables = ", ".join(names) or "?"
        first = names[0] if names else "NAME"
        out.append(
            Diagnostic(
                "MLC615",
                f"'{dotted(path)}' reads the environment ({variables}) into the spec; the "
                "value would be copied into every emitted file",
                smap.locate(path),
                f"name it under security.secrets instead ({first}: 'env:{first}'), so targets "
                "pass a reference and the value never reaches an output; or write the value",
                path=dotted(path),
            )
        )
    return out, secrets


def _rule_diagnostics(
    spec: Spec, loaded: LoadedSpec, parsed: Collection[str] | None = None
) -> list[Diagnostic]:
    smap = loaded.source_map
    found = []
    try:
        for v in spec.violations(parsed):
            found.append(
                Diagnostic(v.code, v.message, smap.locate(v.loc), v.hint, path=dotted(v.loc))
            )
    except (AttributeError, TypeError, KeyError):
        if parsed is None:
            raise
        # a rule not yet told which sections it reads met a section that failed its schema:
        # the schema errors stand, and what the rules found so far comes with them
    return found


def _param_diagnostics(
    spec: Spec, loaded: LoadedSpec, with_tuning: bool = True
) -> list[Diagnostic]:
    """`training.model` (name, params, and the tuned names) against the estimator's signature.

    Done here rather than in a step, so that `mlc run` refuses before anything runs.
    """
    model = spec.training.model
    if model is None:
        return []
    if spec.training.framework == "lightning" and spec.training.lightning.module is not None:
        return []  # the params go to the user's module; the train step checks its interface
    signature, wrong = lookup(spec.training.framework, model.name)
    problems: list[tuple[KeyPath, Problem]] = []
    if wrong is not None:
        problems.append((("training", "model", "name"), wrong))
    if signature is not None:
        problems += [
            (("training", "model", "params", p.name), p)
            for p in check_params(signature, dict(model.params))
        ]
        if with_tuning and spec.tuning is not None:
            # the search picks the values; only the names can be wrong here
            names = dict.fromkeys(spec.tuning.search_space)
            problems += [
                (("tuning", "search_space", p.name), p)
                for p in check_params(signature, names)
                if p.kind == "unknown"
            ]
    codes = {"model": "MLC328", "unknown": "MLC326", "type": "MLC327"}
    return [
        Diagnostic(
            codes[p.kind],
            p.message,
            # a name that is wrong points at the key, a value that is wrong at the value
            loaded.source_map.locate(loc, at_key=p.kind == "unknown"),
            p.hint,
            path=dotted(loc),
        )
        for loc, p in problems
    ]


def _parsed_fields(data: Any) -> tuple[Spec, set[str]]:
    """A `Spec` holding the fields that pass their schema alone, and the names of those fields.

    Fields that failed are left out (defaults or absent): `Spec.violations(parsed)` runs only
    the rules that read parsed fields, so nothing judges a placeholder.
    """
    values: dict[str, Any] = {}
    parsed: set[str] = set()
    source = data if isinstance(data, dict) else {}
    for name, info in Spec.model_fields.items():
        key = info.alias or name
        if key not in source:
            if not info.is_required():
                parsed.add(name)
            continue
        # the field's constraints without its alias/default, which only mean something on a model
        shape: Any = info.annotation
        if info.metadata:
            shape = Annotated[(shape, *info.metadata)]
        adapter: TypeAdapter[Any] = TypeAdapter(shape)
        try:
            values[name] = adapter.validate_python(source[key])
        except ValidationError:
            continue
        parsed.add(name)
    return Spec.model_construct(**values), parsed


def spec_keys_at(path: KeyPath) -> list[str]:
    """Keys the spec models accept under `path` of spec data (for 'did you mean')."""
    return _fields_at(Spec, path)


def pydantic_diagnostics(
    exc: ValidationError,
    data: Any,
    smap: SourceMap,
    model: type[BaseModel],
    prefix: KeyPath = (),
) -> list[Diagnostic]:
    """Turn pydantic errors into located diagnostics, merging a union's alternatives."""
    grouped: dict[tuple[KeyPath, str], list[Any]] = {}
    for detail in exc.errors(include_url=False):
        if _after_item_errors(dict(detail)):
            continue
        raw = tuple(detail["loc"])
        path = _data_path(data, raw, detail["type"])
        if detail["type"] == "union_tag_invalid":
            # point at the tag's value ('format: xlsx'), not at the whole mapping
            tag_key = str(detail.get("ctx", {}).get("discriminator", "")).strip("'")
            if _child_is_set(data, path, tag_key):
                path = (*path, tag_key)
        grouped.setdefault((path, _code(detail["type"])), []).append(detail)
    out: list[Diagnostic] = []
    for (path, code), errs in grouped.items():
        full = (*prefix, *path)
        err: dict[str, Any] = dict(errs[0])
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(path[-1]) if path else ""
            allowed = _fields_at(model, tuple(err["loc"])[:-1])
            where = smap.locate(full, at_key=True)
            out.append(
                Diagnostic(
                    code,
                    f"unknown key '{key}'",
                    where,
                    did_you_mean(key, allowed),
                    path=dotted(full),
                )
            )
            continue
        if kind == "missing":
            key = str(path[-1]) if path else ""
            out.append(
                Diagnostic(
                    code,
                    f"missing required key '{key}'",
                    smap.locate(full[:-1], at_key=True),
                    f"add '{key}:' here",
                    path=dotted(full),
                )
            )
            continue
        if kind == "union_tag_not_found":
            tag = err.get("ctx", {}).get("discriminator", "kind").strip("'")
            out.append(
                Diagnostic(
                    code,
                    f"missing required key {tag}",
                    smap.locate(full),
                    f"add {tag}: …",
                    path=dotted(full),
                )
            )
            continue
        messages = list(dict.fromkeys(_message(e) for e in errs))
        hint = ""
        if kind in ("literal_error", "union_tag_invalid", "enum"):
            expected = err.get("ctx", {}).get("expected") or err.get("ctx", {}).get("expected_tags")
            found = err.get("ctx", {}).get("tag") if kind == "union_tag_invalid" else err["input"]
            if isinstance(found, str) and expected:
                options = [
                    o.strip().strip("'") for o in str(expected).replace(" or ", ", ").split(",")
                ]
                hint = did_you_mean(found, options, "values")
        out.append(
            Diagnostic(code, "; or ".join(messages), smap.locate(full), hint, path=dotted(full))
        )
    return out


def _after_item_errors(err: dict[str, Any]) -> bool:
    """A `too_short` that only counts items which failed themselves (already reported)."""
    if err["type"] != "too_short":
        return False
    found, ctx = err.get("input"), err.get("ctx", {})
    return isinstance(found, list | tuple) and len(found) >= int(ctx.get("min_length", 0))


def _child_is_set(data: Any, path: KeyPath, key: str) -> bool:
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, dict) and key in node


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    if err["type"] == "value_error" and msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    found = err.get("input")
    if (
        err["type"] not in ("value_error",)
        and not isinstance(found, dict | list)
        and found is not None
    ):
        shown = repr(found)
        key = next((str(p) for p in reversed(tuple(err["loc"])) if isinstance(p, str)), "")
        if find_secret(key, str(found)):
            shown = redact(str(found))
        elif len(shown) > 60:
            shown = shown[:57] + "..."
        msg += f" (found {shown})"
    return msg


def _data_path(data: Any, loc: KeyPath, error_type: str) -> KeyPath:
    """Drop the parts of a pydantic location that name union members, not keys."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif last and error_type in ("missing", "extra_forbidden") and isinstance(node, dict):
            path.append(part)
        elif isinstance(part, str) and isinstance(node, dict | list):
            continue  # a union member's tag, e.g. 'csv' in data.sources[0]
        else:
            break
    return tuple(path)


def _fields_at(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """Keys a model accepts at `loc` (for 'did you mean'); empty when it cannot be told."""
    tp: Any = model
    for part in loc:
        tp = _descend(tp, part)
        if tp is None:
            return []
    # `X | None` and untagged unions: every member's keys are valid here
    return [
        f.alias or name
        for member in _members(tp)
        if isinstance(member, type) and issubclass(member, BaseModel)
        for name, f in member.model_fields.items()
    ]


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _members(tp: Any) -> Iterable[Any]:
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            yield from _members(arg)
    else:
        yield tp


def _descend(tp: Any, part: str | int) -> Any:
    for member in _members(tp):
        origin = typing.get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            for name, f in member.model_fields.items():
                if part in (name, f.alias):
                    return f.annotation
            if isinstance(part, str) and _tag_of(member) == part:
                return member
        elif origin in (tuple, list) and isinstance(part, int):
            return typing.get_args(member)[0]
        elif origin is dict and isinstance(part, str):
            return typing.get_args(member)[1]
    # a union member's tag in the location: pick the member whose literal tag matches
    for member in _members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel) and _tag_of(member) == part:
            return member
    return None


def _tag_of(model: type[BaseModel]) -> str | None:
    for name in ("format", "op", "kind", "type"):
        field = model.model_fields.get(name)
        if field is not None and typing.get_origin(field.annotation) is Literal:
            args = typing.get_args(field.annotation)
            if len(args) == 1:
                return str(args[0])
    return None
