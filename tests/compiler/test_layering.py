"""The import direction holds: every `mlc.*` import of every module, read with `ast`.

- `specs/` (the spec language) imports nothing of mlc but itself.
- `runtime/` imports nothing of `compiler/`, `specs/` or `targets/`: a step gets everything
  through its params.
- `targets/` imports from the compiler only the IR and diagnostics, and nothing of the spec
  language; everything else a target needs (cloud facts, quantities, `parse_path`, an atomic
  writer, the compiler version) comes through the target base, `targets/base.py`.
- the compiler (outside the CLI and the library API it calls, which drive the targets and the
  runtime) imports of the targets only their contract, `targets/base.py`, and nothing of the
  runtime.

Imports inside functions count the same as top-level ones. Under `TYPE_CHECKING` one import is
allowed that would be refused at run time: the runtime's steps annotate their params with the
IR's typed contract (`mlc.compiler.ir.params`), which is never imported when a step runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("compiler", "specs", "targets", "runtime")

TARGETS_FROM_COMPILER = ("mlc.compiler.ir", "mlc.compiler.diagnostics")
"""What any target module may import from the compiler (submodules included)."""

TARGET_BASE_IMPORTS = (
    *TARGETS_FROM_COMPILER,
    "mlc.compiler.sourcemap",
    "mlc.compiler.output",
    "mlc.compiler",
    "mlc.specs.clouds",
    "mlc.specs.quantities",
    "mlc.specs._base",
)
"""What `targets/base.py` may import to expose it to targets: `mlc.compiler` only for its
`__version__`, `mlc.compiler.output` only for `write_file`, `mlc.specs._base` only for
`is_secret_ref`."""

TYPE_ONLY = {"runtime": ("mlc.compiler.ir.params",)}
"""Modules a room may import under `if TYPE_CHECKING:` only (types, no run-time arrow)."""

DRIVERS = ("compiler/cli/", "compiler/api/")
"""The command line and the library API behind it: they run targets and the runtime."""

EXEMPT = {
    "targets/testing.py": "the conformance kit: it runs the whole compiler on a plugin's target"
}

PENDING: dict[tuple[str, str], str] = {}
"""Known back arrows in modules outside this change, each with its fix. The test fails when
one is fixed and still listed, so the list only shrinks."""


def _module_name(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["mlc", *parts])


def _is_module(name: str) -> bool:
    """Whether `name` is a module or package of the checkout (not a name inside one)."""
    base = REPO.joinpath(*name.split(".")[1:])
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    inside.update(id(n) for n in ast.walk(stmt))
    return inside


def imports(rel: str, source: str, type_only: bool | None = None) -> list[str]:
    """Every mlc module the module at `rel` imports (`from a import b`: `a.b` if a module);
    with `type_only` True only those under `TYPE_CHECKING`, False only the others."""
    package = _module_name(rel)
    if not rel.endswith("__init__.py"):
        package = package.rsplit(".", 1)[0]
    found: list[str] = []
    tree = ast.parse(source, rel)
    typing_only = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if type_only is not None and (id(node) in typing_only) != type_only:
            continue
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{module}" if module else base
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.append(sub if _is_module(sub) else module)
    return sorted({m for m in found if m == "mlc" or m.startswith("mlc.")})


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def allowed(rel: str, module: str) -> bool:
    """Whether the module at `rel` (a path from the repository root) may import `module`."""
    room = rel.split("/", 1)[0]
    top = module.split(".")[1] if "." in module else ""
    if room == "specs":
        return top == "specs"
    if room == "runtime":
        return top not in ("compiler", "specs", "targets")
    if room == "targets":
        if rel in EXEMPT or top not in ("compiler", "specs"):
            return True
        if _under(module, TARGETS_FROM_COMPILER):
            return True
        return rel == "targets/base.py" and module in TARGET_BASE_IMPORTS
    if room == "compiler" and not rel.startswith(DRIVERS):
        if top == "runtime":
            return False
        if top == "targets":
            return module == "mlc.targets" or _under(module, ("mlc.targets.base",))
    return True


def violations(rel: str, source: str | None = None) -> list[str]:
    if source is None:
        source = (REPO / rel).read_text()
    typed = TYPE_ONLY.get(rel.split("/", 1)[0], ())
    return sorted(
        {m for m in imports(rel, source, type_only=False) if not allowed(rel, m)}
        | {
            m
            for m in imports(rel, source, type_only=True)
            if not allowed(rel, m) and not _under(m, typed)
        }
    )


def _modules() -> list[str]:
    return sorted(
        p.relative_to(REPO).as_posix() for folder in FOLDERS for p in (REPO / folder).rglob("*.py")
    )


@pytest.mark.parametrize("rel", _modules())
def test_import_direction(rel: str) -> None:
    found = [m for m in violations(rel) if (rel, m) not in PENDING]
    assert found == [], f"{rel} imports against the layering: {found}"


def test_pending_back_arrows_still_exist() -> None:
    for (rel, module), fix in PENDING.items():
        assert module in violations(rel), f"{rel} no longer imports {module}: drop it from PENDING"
        assert fix


def test_the_walk_sees_back_arrows() -> None:
    """The checker itself: imports it must refuse in each room, and ones it must accept."""
    refused = {
        "specs/x.py": "from mlc.compiler.ir import IRGraph\n",
        "runtime/x.py": "def f():\n    from mlc.specs import clouds\n",
        "targets/kfp/x.py": "from mlc.compiler.passes.base import parse_path\n",
        "targets/k8s/x.py": "from mlc.specs.quantities import cpu_cores\n",
        "compiler/passes/x.py": "from mlc.targets import _cloud\n",
        "runtime/steps/x.py": "from ...compiler import ir\n",
        "runtime/steps/y.py": "from mlc.compiler.ir.params import TrainParams\n",
        "runtime/steps/z.py": "if TYPE_CHECKING:\n    from mlc.compiler.passes import base\n",
    }
    for rel, source in refused.items():
        assert violations(rel, source), rel
    violations_free = {
        "targets/kfp/x.py": "from mlc.compiler.ir.model import PIPELINE_KINDS\n",
        "targets/k8s/x.py": "from mlc.targets.base import clouds, quantities\n",
        "compiler/passes/x.py": "from mlc.targets.base import Target\n",
        "specs/x.py": "from . import quantities\n",
        "runtime/steps/x.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from mlc.compiler.ir.params import TrainParams\n"
        ),
    }
    for rel, source in violations_free.items():
        assert violations(rel, source) == [], rel
