"""The mlc code a registered model needs, shipped with it (MLflow `code_paths`).

A saved pipeline names mlc's own classes (`mlc.runtime.steps._transforms.Pseudonymiser`,
`MitigatedModel`, the Lightning estimator). Where mlc is not installed — MLServer's and
KServe's mlflow runtimes, `mlflow models serve` — loading it failed with `No module named
'mlc'`. `stage` writes a minimal `mlc` package holding just the modules those classes live in
and the mlc modules they import at module level (found by reading their source, not by
importing it), with empty package `__init__` files; MLflow puts the folder on `sys.path` when
it loads the model. Where mlc is installed it is already imported, and the copy is never read.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The folder the `mlc` package maps to (compiler/, runtime/, specs/, targets/)."""


def _file_of(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != "mlc" or len(parts) < 2:
        return None
    base = ROOT.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _top_level_imports(path: Path) -> set[str]:
    """mlc modules imported when `path` is imported: module-level statements only, not those
    under `if TYPE_CHECKING:` or inside functions (those run later, or never, in a model)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlc."):
            found.add(node.module)
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mlc."))
    return {m for m in found if _is_module_file(m)}


def _is_module_file(module: str) -> bool:
    """A module that is a file: packages ship with empty `__init__` files instead of their own
    (which import far more than a model needs)."""
    path = _file_of(module)
    return path is not None and path.name != "__init__.py"


def closure(modules: Iterable[str]) -> list[str]:
    """`modules` and every mlc module they import at module level, sorted."""
    seen: set[str] = set()
    todo = [m for m in modules if _is_module_file(m)]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _file_of(module)
        assert path is not None
        todo.extend(_top_level_imports(path) - seen)
    return sorted(seen)


def modules_of_types(types: Iterable[str]) -> list[str]:
    """The modules of fully qualified class names (`pkg.mod.Class` -> `pkg.mod`)."""
    return sorted({t.rsplit(".", 1)[0] for t in types if t.startswith("mlc.")})


def stage(modules: Iterable[str], dest: Path) -> Path | None:
    """Write the `mlc` package tree of `closure(modules)` under `dest`; the `mlc` folder, or
    None when there is nothing to ship."""
    needed = closure(modules)
    if not needed:
        return None
    package = dest / "mlc"
    if package.exists():
        shutil.rmtree(package)
    for module in needed:
        parts = module.split(".")
        for depth in range(1, len(parts)):
            folder = dest.joinpath(*parts[:depth])
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "__init__.py").touch()
        source = _file_of(module)
        assert source is not None
        shutil.copyfile(source, dest.joinpath(*parts[:-1]) / f"{parts[-1]}.py")
    return package
