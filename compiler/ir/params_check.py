"""Check a step's params against its kind's `TypedDict` (`mlc.compiler.ir.params`).

A small validator over `typing.get_type_hints`, compiled once per type into closures: the local
executor and every target that reads `ir.json` load IR often, and pydantic (or re-walking the
type hints per value) would cost more than reading the file. It understands what the params
types use: TypedDicts (required, `NotRequired` and unknown keys), `list[X]`, `dict[str, X]`,
`Literal`, unions (a union of TypedDicts is told apart by their `Literal` keys, so that an error
names the member the value meant to be), `None`, `Any`, `str`, `bool`, `int`, `float`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Literal, NotRequired, Required, Union

from mlc.compiler.ir.model import IRError, StepKind

Check = Callable[[Any, str], None]

_CHECKS: dict[Any, Check] = {}


def check_params(kind: StepKind, params: Any, where: str) -> None:
    """Raise `IRError` naming the first path in `params` that does not fit `kind`'s type.

    `where` prefixes every path, e.g. `steps[5] 'train'.params`.
    """
    from mlc.compiler.ir.params import PARAMS_BY_KIND

    compiled(PARAMS_BY_KIND[kind])(params, where)


def compiled(tp: Any) -> Check:
    """The check of type `tp`, built on first use."""
    check = _CHECKS.get(tp)
    if check is None:
        check = _compile(tp)
        _CHECKS[tp] = check
    return check


def describe(value: Any) -> str:
    """JSON's word for the type of `value`, with the value itself when it is short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"{'integer' if isinstance(value, int) else 'number'} {value!r}"
    if isinstance(value, str):
        return f"string {value!r}" if len(value) <= 40 else "a string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def type_name(tp: Any) -> str:
    """How a params type reads in errors and in the reference."""
    tp = _strip(tp)
    if tp is Any:
        return "any"
    if tp is type(None) or tp is None:
        return "null"
    simple = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object"}
    if tp in simple:
        return simple[tp]
    if _is_typeddict(tp):
        return str(tp.__name__)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is list:
        return f"list[{type_name(args[0])}]"
    if origin is dict:
        return f"dict[{type_name(args[0])}, {type_name(args[1])}]"
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    return str(tp)


def typeddict_fields(tp: Any) -> dict[str, tuple[Any, bool, tuple[Any, ...]]]:
    """Key -> (value type, required, `Annotated` metadata) of a TypedDict, in declared order.

    Required-ness comes from the resolved hints: with postponed annotations Python 3.11 cannot
    see `NotRequired` when it fills `__required_keys__`.
    """
    hints = typing.get_type_hints(tp, include_extras=True)
    fields: dict[str, tuple[Any, bool, tuple[Any, ...]]] = {}
    for key, hint in hints.items():
        required = True
        origin = typing.get_origin(hint)
        if origin is NotRequired or origin is Required:
            required = origin is Required
            hint = typing.get_args(hint)[0]
        meta: tuple[Any, ...] = ()
        if typing.get_origin(hint) is typing.Annotated:
            meta = tuple(hint.__metadata__)
            hint = hint.__origin__
        fields[key] = (hint, required, meta)
    return fields


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and typing.is_typeddict(tp)


def _strip(tp: Any) -> Any:
    """`tp` without `Annotated`, `NotRequired` and `Required` wrappers."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = tp.__origin__
        elif origin is NotRequired or origin is Required:
            tp = typing.get_args(tp)[0]
        else:
            return tp


def _fail(where: str, expected: str, value: Any) -> IRError:
    return IRError(f"{where}: expected {expected}, got {describe(value)}")


def _compile(tp: Any) -> Check:
    tp = _strip(tp)
    if tp is Any:
        return _accept
    if tp is type(None) or tp is None:
        return _check_none
    if tp is bool:
        return _check_bool
    if tp is int:
        return _check_int
    if tp is float:
        return _check_float
    if tp is str:
        return _check_str
    if _is_typeddict(tp):
        return _compile_typeddict(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return _compile_literal(args)
    if origin is list:
        return _compile_list(args[0])
    if origin is dict:
        return _compile_dict(args[1])
    if origin in (Union, types.UnionType):
        return _compile_union(args)
    raise TypeError(f"params type {tp!r} is not supported by the params check")


def _accept(value: Any, where: str) -> None:
    return None


def _check_none(value: Any, where: str) -> None:
    if value is not None:
        raise _fail(where, "null", value)


def _check_bool(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise _fail(where, "boolean", value)


def _check_int(value: Any, where: str) -> None:
    # bool is an int subclass: a count must not take true/false
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(where, "integer", value)


def _check_float(value: Any, where: str) -> None:
    # JSON writes 2.0 as 2 in some producers; an integer is a number
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _fail(where, "number", value)


def _check_str(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise _fail(where, "string", value)


def _compile_literal(allowed: tuple[Any, ...]) -> Check:
    # type() too: True == 1 and 1.0 == 1, but a Literal["x"] | Literal[1] means those values
    members = frozenset((type(a), a) for a in allowed)
    expected = "one of " + ", ".join(repr(a) for a in allowed)

    def check(value: Any, where: str) -> None:
        try:
            ok = (type(value), value) in members
        except TypeError:  # unhashable: a list or an object
            ok = False
        if not ok:
            raise _fail(where, expected, value)

    return check


def _compile_list(item_type: Any) -> Check:
    item = compiled(item_type)

    def check(value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise _fail(where, "list", value)
        for i, entry in enumerate(value):
            item(entry, f"{where}[{i}]")

    return check


def _compile_dict(value_type: Any) -> Check:
    item = compiled(value_type)

    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise _fail(where, "object", value)
        for key, entry in value.items():
            if not isinstance(key, str):
                raise IRError(f"{where}: keys must be strings, got {describe(key)}")
            item(entry, f"{where}.{key}")

    return check


def _compile_typeddict(tp: Any) -> Check:
    # Filled on first call: a TypedDict that refers to itself (none does today) or to one not yet
    # compiled must not recurse while compiling.
    fields: dict[str, Check] = {}
    required: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()

    def check(value: Any, where: str) -> None:
        nonlocal required, known
        if not known:
            spec = typeddict_fields(tp)
            fields.update({k: compiled(h) for k, (h, _, _) in spec.items()})
            required = frozenset(k for k, (_, req, _) in spec.items() if req)
            known = frozenset(spec)
        if not isinstance(value, dict):
            raise _fail(where, f"object ({tp.__name__})", value)
        keys = value.keys()
        if not required <= keys:
            missing = ", ".join(sorted(required - keys))
            raise IRError(f"{where}: missing key(s) {missing} ({tp.__name__})")
        if not keys <= known:
            unknown = ", ".join(sorted(str(k) for k in keys - known))
            raise IRError(
                f"{where}: unknown key(s) {unknown} ({tp.__name__} has: {', '.join(sorted(known))})"
            )
        for key, entry in value.items():
            fields[key](entry, f"{where}.{key}")

    return check


def _discriminators(tp: Any) -> dict[str, frozenset[Any]]:
    return {
        key: frozenset(typing.get_args(hint))
        for key, (hint, _, _) in typeddict_fields(tp).items()
        if typing.get_origin(hint) is Literal
    }


def _compile_union(members: tuple[Any, ...]) -> Check:
    nullable = any(m is type(None) for m in members)
    others = tuple(m for m in members if m is not type(None))
    checks = [compiled(m) for m in others]
    tagged = [(m, _discriminators(m)) for m in others if _is_typeddict(_strip(m))]
    expected = " or ".join(type_name(m) for m in members)

    def check(value: Any, where: str) -> None:
        if value is None and nullable:
            return
        if isinstance(value, dict) and tagged:
            # the member whose Literal keys the value holds is the one it meant to be: its error
            # says more than "expected A or B"
            for member, tags in tagged:
                if (
                    tags
                    and any(k in value for k in tags)
                    and all(_holds(tags[k], value[k]) for k in tags if k in value)
                ):
                    compiled(member)(value, where)
                    return
            shared = set.intersection(*(set(tags) for _, tags in tagged))
            for key in sorted(shared):
                if key in value:
                    allowed = sorted({repr(a) for _, tags in tagged for a in tags[key]})
                    raise _fail(f"{where}.{key}", "one of " + ", ".join(allowed), value[key])
        errors: list[IRError] = []
        for member_check in checks:
            try:
                member_check(value, where)
                return
            except IRError as exc:
                errors.append(exc)
        if len(errors) == 1 and not (nullable and str(errors[0]).startswith(f"{where}: expected")):
            # the one member's own error, deeper down, says more than "expected X or null"
            raise errors[0]
        raise _fail(where, expected, value)

    return check


def _holds(allowed: frozenset[Any], value: Any) -> bool:
    try:
        return value in allowed
    except TypeError:  # unhashable
        return False
