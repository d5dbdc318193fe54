"""Estimator parameters, checked before any step runs, without importing the estimator.

`mlc validate` must stay light (tests/compiler/test_startup.py: no scikit-learn, no torch), so the
estimator's `__init__` signature, and scikit-learn's `_parameter_constraints` where the class
declares them, are read from its source with `ast`: modules are found the way `import` would
find them, but nothing is executed. An estimator whose source cannot be read here (not
installed in this environment, a C extension, a class built at run time) is not checked; the
train step still checks its parameters when it builds the estimator.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

from mlc.compiler.diagnostics import did_you_mean

SKLEARN_MODULES = ("ensemble", "linear_model", "tree", "svm", "neighbors", "naive_bayes")
"""Where `framework: sklearn` looks up a short model name, in this order (as the train step
does: `mlc.runtime.steps.train.SKLEARN_MODULES`, held equal by a test)."""

LIGHTNING_MODELS = {"tabular_mlp": "mlc.runtime.lightning_mlp.MLPEstimator"}
"""Built-in Lightning modules and the estimator class whose parameters `model.params` sets."""

_MAX_DEPTH = 12
"""Re-exports and base classes followed before giving up (a cycle or an odd package)."""

ANY = "any"
"""A constraint that cannot be judged statically (a callable, an array, an object)."""

_NO_DEFAULT = object()
_NOT_LITERAL = object()


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    """The literal default, `_NO_DEFAULT` when required, `_NOT_LITERAL` for an expression."""
    accepts: frozenset[str] | None
    """Kinds of value allowed (`int`, `float`, `str`, `bool`, `none`, or `ANY`), from
    scikit-learn's constraints or else the annotation; None when neither says."""

    @property
    def default_text(self) -> str:
        unknown = self.default is _NO_DEFAULT or self.default is _NOT_LITERAL
        return "" if unknown else repr(self.default)


@dataclass(frozen=True)
class Signature:
    qualname: str
    params: dict[str, Param]
    var_keyword: bool
    """`**kwargs` in `__init__`: any name may be valid."""


@dataclass(frozen=True)
class Problem:
    kind: str  # "model" (no such model) | "unknown" (no such parameter) | "type"
    name: str
    """The model name, or the parameter's."""
    message: str
    hint: str


def lookup(framework: str, model: str) -> tuple[Signature | None, Problem | None]:
    """The estimator's signature (None when it cannot be read here), or the problem with the
    model name itself."""
    if framework == "lightning":
        ref = LIGHTNING_MODELS.get(model)
        if ref is None:
            hint = "the built-in Lightning module is " + ", ".join(map(repr, LIGHTNING_MODELS))
            return None, Problem("model", model, f"unknown Lightning model '{model}'", hint)
        module, _, name = ref.rpartition(".")
        found = _signature_of(module, name)
        if found is None:
            return None, None
        return Signature(model, found.params, found.var_keyword), None
    if framework != "sklearn":
        return None, None
    if "." in model or ":" in model:
        module, _, name = model.partition(":") if ":" in model else model.rpartition(".")
        return _signature_of(module, name), None
    for sub in SKLEARN_MODULES:
        cls = _find_class(f"sklearn.{sub}", model, 0)
        if cls is not None:
            return _signature(cls[0], cls[1], 0), None
    names = _sklearn_names()
    if not names:
        return None, None  # not installed here: the training image may have it
    hint = did_you_mean(model, names, "models")
    if not hint.startswith("did you mean"):
        hint = "use a scikit-learn estimator name or a dotted path 'pkg.mod.Class'"
    return None, Problem("model", model, f"unknown model '{model}'", hint)


def _sklearn_names() -> list[str]:
    """Names exported by the modules a short model name is looked up in."""
    names: list[str] = []
    for sub in SKLEARN_MODULES:
        tree = _module_tree(f"sklearn.{sub}")
        if tree is not None:
            names.extend(_all_of(tree[0]))
    return names


def check_params(signature: Signature, params: dict[str, Any]) -> Iterator[Problem]:
    """Unknown names (with a 'did you mean') and values of an obviously wrong type."""
    for key, value in params.items():
        param = signature.params.get(key)
        if param is None:
            if not signature.var_keyword:
                yield Problem(
                    "unknown",
                    key,
                    f"model '{signature.qualname}' has no parameter '{key}'",
                    did_you_mean(key, signature.params, "parameters"),
                )
            continue
        expected = _expected(param)
        if expected and not _fits(value, expected):
            default = f"; its default is {param.default_text}" if param.default_text else ""
            yield Problem(
                "type",
                key,
                f"parameter '{key}' of '{signature.qualname}' takes {_describe(expected)} "
                f"(found {value!r})",
                f"write a value of that type{default}",
            )


def _expected(param: Param) -> frozenset[str]:
    """Kinds a value must be of; empty when nothing can be said."""
    if param.accepts is not None:
        return frozenset() if ANY in param.accepts else param.accepts
    # No declared constraint: the default's type is the only evidence, and only a string in
    # place of a number or a flag is wrong beyond doubt (a None default says nothing).
    default = param.default
    if isinstance(default, bool):
        return frozenset({"bool", "int", "float", "none"})
    if isinstance(default, int | float):
        return frozenset({"int", "float", "bool", "none"})
    return frozenset()


def _fits(value: Any, kinds: frozenset[str]) -> bool:
    if isinstance(value, bool):
        return bool(kinds & {"bool", "int"})
    if isinstance(value, int):
        return bool(kinds & {"int", "float"})
    if isinstance(value, float):
        return "float" in kinds
    if isinstance(value, str):
        return "str" in kinds
    if value is None:
        return "none" in kinds
    return True  # lists and mappings: nothing declared here tells them apart


def _describe(kinds: frozenset[str]) -> str:
    words = {
        "int": "an integer",
        "float": "a number",
        "str": "a string",
        "bool": "true/false",
        "none": "null",
    }
    if "float" in kinds:
        kinds = kinds - {"int"}
    return " or ".join(words[k] for k in sorted(kinds, key=list(words).index))


# -- finding source without importing ---------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _module_source(module: str) -> tuple[str, bool] | None:
    """(path of the module's .py file, is a package), found as `import` would find it."""
    parts = module.split(".")
    spec: ModuleSpec | None = None
    for i in range(len(parts)):
        if i and (spec is None or spec.submodule_search_locations is None):
            return None
        path = None if spec is None else list(spec.submodule_search_locations or ())
        spec = _find_spec(".".join(parts[: i + 1]), path)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return spec.origin, spec.submodule_search_locations is not None


def _find_spec(name: str, path: list[str] | None) -> ModuleSpec | None:
    """What `import` would load for `name`, asking the finders without importing parents
    (`importlib.util.find_spec` imports them, and importing scikit-learn is what we avoid)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return getattr(loaded, "__spec__", None)
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(name, path, None)
        except (ImportError, ValueError, OSError):
            return None
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


@functools.lru_cache(maxsize=256)
def _parse(path: str) -> ast.Module | None:
    try:
        return ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def _module_tree(module: str) -> tuple[ast.Module, bool] | None:
    source = _module_source(module)
    if source is None:
        return None
    tree = _parse(source[0])
    return None if tree is None else (tree, source[1])


def _absolute(module: str, is_package: bool, target: str | None, level: int) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


def _all_of(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            return [str(v) for v in value]
    return []


def _find_class(module: str, name: str, depth: int) -> tuple[str, ast.ClassDef] | None:
    """The class `name` as seen from `module`: defined there, or imported into it."""
    if depth > _MAX_DEPTH:
        return None
    found = _module_tree(module)
    if found is None:
        return None
    tree, is_package = found
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return module, node
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _absolute(module, is_package, node.module, node.level)
                    return _find_class(source, alias.name, depth + 1)
        elif (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Name)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        ):
            return _find_class(module, node.value.id, depth + 1)
    return None


def _resolve_base(module: str, expr: ast.expr, depth: int) -> tuple[str, ast.ClassDef] | None:
    if isinstance(expr, ast.Name):
        return _find_class(module, expr.id, depth + 1)
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        # `base.BaseEstimator` after `from sklearn import base` or `import sklearn.base as base`
        found = _module_tree(module)
        if found is None:
            return None
        tree, is_package = found
        alias_of = expr.value.id
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == alias_of:
                        parent = _absolute(module, is_package, node.module, node.level)
                        return _find_class(f"{parent}.{alias.name}", expr.attr, depth + 1)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if (alias.asname or alias.name) == alias_of:
                        return _find_class(alias.name, expr.attr, depth + 1)
    return None


def _signature_of(module: str, name: str) -> Signature | None:
    found = _find_class(module, name, 0)
    return None if found is None else _signature(found[0], found[1], 0)


def _signature(module: str, cls: ast.ClassDef, depth: int) -> Signature | None:
    """Parameters of `cls.__init__`, following base classes when it defines none."""
    if depth > _MAX_DEPTH or cls.decorator_list:
        return None  # a decorated class (a dataclass, say) may have any __init__
    constraints = _constraints(module, cls, depth)
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            return _from_init(f"{cls.name}", node, constraints)
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id == "object":
            continue
        resolved = _resolve_base(module, base, depth)
        if resolved is None:
            return None  # a base we cannot read may define __init__
        inherited = _signature(resolved[0], resolved[1], depth + 1)
        if inherited is None:
            return None
        if inherited.params or inherited.var_keyword:
            params = {
                k: Param(p.name, p.default, constraints.get(k, p.accepts))
                for k, p in inherited.params.items()
            }
            return Signature(cls.name, params, inherited.var_keyword)
    if cls.keywords:
        return None  # a metaclass may build __init__
    return Signature(cls.name, {}, False)


def _from_init(
    qualname: str, init: ast.FunctionDef, constraints: dict[str, frozenset[str]]
) -> Signature:
    args = init.args
    positional = [*args.posonlyargs, *args.args][1:]  # drop self
    defaults: list[Any] = [_NO_DEFAULT] * (len(positional) - len(args.defaults))
    defaults += [_literal(d) for d in args.defaults]
    named = list(zip(positional, defaults, strict=True))
    named += [
        (a, _NO_DEFAULT if d is None else _literal(d))
        for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    params = {
        a.arg: Param(a.arg, d, constraints.get(a.arg, _annotated(a.annotation))) for a, d in named
    }
    return Signature(qualname, params, args.kwarg is not None)


def _annotated(node: ast.expr | None) -> frozenset[str] | None:
    """Kinds a type annotation such as `int | None` allows; None without one."""
    if node is None:
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _annotated(node.left), _annotated(node.right)
        return None if left is None or right is None else left | right
    if isinstance(node, ast.Constant) and node.value is None:
        return frozenset({"none"})
    if isinstance(node, ast.Name) and node.id in ("int", "float", "str", "bool"):
        return frozenset(_TYPE_NAMES[node.id])
    return frozenset({ANY})


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_LITERAL


def _constraints(module: str, cls: ast.ClassDef, depth: int) -> dict[str, frozenset[str]]:
    """scikit-learn's `_parameter_constraints` of `cls` (inherited ones included) as kinds."""
    for node in cls.body:
        value: ast.expr | None = None
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "_parameter_constraints"
        ):
            value = node.value
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_parameter_constraints" for t in node.targets
        ):
            value = node.value
        if value is None:
            continue
        if not isinstance(value, ast.Dict):
            return {}
        out: dict[str, frozenset[str]] = {}
        for key, item in zip(value.keys, value.values, strict=True):
            if key is None:
                # `**Base._parameter_constraints`
                if isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name):
                    spread = _find_class(module, item.value.id, depth + 1)
                    if spread is not None:
                        out.update(_constraints(spread[0], spread[1], depth + 1))
                continue
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                out[key.value] = _kinds(item)
        return out
    # not declared here: inherited from the first base that declares them
    for base in cls.bases:
        resolved = _resolve_base(module, base, depth)
        if resolved is not None and depth < _MAX_DEPTH:
            inherited = _constraints(resolved[0], resolved[1], depth + 1)
            if inherited:
                return inherited
    return {}


_STRING_CONSTRAINTS = {
    "boolean": {"bool"},
    "verbose": {"bool", "int"},
    "random_state": {"int", "none"},
    "nan": {"float"},
    "missing_values": {"int", "float", "str", "none"},
}
_TYPE_NAMES = {
    "str": {"str"},
    "bool": {"bool"},
    "int": {"int"},
    "Integral": {"int"},
    "float": {"float", "int"},
    "Real": {"float", "int"},
    "RealNotInt": {"float"},
}


def _kinds(node: ast.expr) -> frozenset[str]:
    """What a constraint list such as `[Interval(Integral, 1, None), None]` allows."""
    items = node.elts if isinstance(node, ast.List | ast.Tuple) else [node]
    out: set[str] = set()
    for item in items:
        out |= _kind(item)
    return frozenset(out)


def _kind(item: ast.expr) -> set[str]:
    if isinstance(item, ast.Constant):
        if item.value is None:
            return {"none"}
        if isinstance(item.value, str):
            return set(_STRING_CONSTRAINTS.get(item.value, {ANY}))
        return {ANY}
    if isinstance(item, ast.Name):
        return set(_TYPE_NAMES.get(item.id, {ANY}))
    if isinstance(item, ast.Attribute):
        return set(_TYPE_NAMES.get(item.attr, {ANY}))
    if isinstance(item, ast.Call):
        func = item.func.id if isinstance(item.func, ast.Name) else ""
        if func == "StrOptions":
            return {"str"}
        if func == "Hidden" and item.args:
            return _kind(item.args[0])
        if func in ("Interval", "Options") and item.args:
            first = item.args[0]
            name = first.id if isinstance(first, ast.Name) else ""
            if name in _TYPE_NAMES and name != "str":
                return set(_TYPE_NAMES[name])
    return {ANY}
