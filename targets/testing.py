"""Conformance kit for targets: the tests every target must pass, ready to subclass.

A target's own test module subclasses `TargetConformance` and names its target; pytest then runs
every check below against it (the same idea as dbt's adapter test kit)::

    # tests/test_conformance.py of a plugin distribution
    from mlc.targets.testing import TargetConformance
    from my_plugin import MyTarget


    class TestMyTarget(TargetConformance):
        target = MyTarget
        spec_path = "tests/data/mlc.yaml"  # optional: the spec to compile (default below)
        options = {"flavour": "strict"}  # optional: the target's options for that spec

Without `spec_path` the kit compiles the project that `mlc init` scaffolds, which uses every
section of the spec language. A target that cannot honour that spec (its capabilities pass
reports errors) must name a spec it can compile.

What is checked: name, description and a strict options model (unknown options rejected);
declared, consistent capabilities; `emit` on the spec's IR returns relative POSIX paths with
`str`/`bytes` contents; the output is byte-identical across two emits in one process and in two
processes with different `PYTHONHASHSEED`; `emit` does not mutate the IR; the target's module
imports without torch, pyspark, kfp or mlflow; `check()` returns `Diagnostic`s located by key
path; and `mlc.compiler.api.compile_spec` writes a manifest whose sha256s match the files.

This module imports pytest, so import it from tests only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph, StepKind
from mlc.compiler.output import MANIFEST_NAME
from mlc.compiler.registry import TargetRegistry
from mlc.targets.base import Capabilities, EmitContext, Target, TargetOptions, check_emitted

HEAVY_MODULES = ("torch", "pyspark", "kfp", "mlflow")
"""Libraries a target module must not import at module level (they slow every `mlc` command)."""

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_FEATURE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")

# Run in a fresh interpreter: build the IR from the spec, emit, print the sha256 of each file.
_EMIT_SCRIPT = textwrap.dedent(
    """
    import hashlib, importlib, json, sys
    from mlc.compiler.api import check
    from mlc.compiler.registry import TargetRegistry
    from mlc.targets.base import EmitContext

    module, qualname, spec, options = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    target = obj()
    registry = TargetRegistry.from_entry_points()
    registry.register(target)
    result = check(spec, targets=[target.name], registry=registry)
    opts = target.options_model.model_validate(json.loads(options))
    ctx = EmitContext(options=opts, project_dir=str(result.loaded.project_dir))
    files = target.emit(result.ir, ctx)
    digests = {}
    for path, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        digests[path] = hashlib.sha256(data).hexdigest()
    print(json.dumps(digests, sort_keys=True))
    """
)

_IMPORT_SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys
    importlib.import_module(sys.argv[1])
    heavy = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
    print(json.dumps(heavy))
    """
)


def _digests(files: Mapping[str, str | bytes]) -> dict[str, str]:
    out = {}
    for path, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        out[path] = hashlib.sha256(data).hexdigest()
    return dict(sorted(out.items()))


def _run_python(args: list[str], env_extra: Mapping[str, str], cwd: Path) -> str:
    env = {**os.environ, **env_extra}
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )
    if proc.returncode != 0:
        pytest.fail(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


class TargetConformance:
    """Base class of a target's conformance tests; subclass it as `Test<Something>`.

    Attributes to set in the subclass are documented below; only `target` is required.
    """

    target: ClassVar[type[Target] | None] = None
    """The `Target` subclass under test."""
    spec_path: ClassVar[str | Path | None] = None
    """Spec to compile (relative to the working directory); None: a project `mlc init` writes."""
    options: ClassVar[Mapping[str, Any]] = {}
    """Valid options for the target (what a spec would put under `targets.<name>`), used by the
    checks that call `emit` directly; the compile check reads them from the spec itself."""

    # -- fixtures --------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def target_cls(cls) -> type[Target]:
        if cls.target is None:
            pytest.fail(f"{cls.__name__} must set `target = <your Target subclass>`")
        assert cls.target is not None
        return cls.target

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_spec(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        if cls.spec_path is not None:
            return Path(str(cls.spec_path)).resolve()
        from mlc.compiler.scaffold import scaffold

        project = tmp_path_factory.mktemp("conformance") / "project"
        scaffold(project, name="conformance")
        return project / "mlc.yaml"

    @pytest.fixture(scope="class")
    @classmethod
    def registry(cls, target_cls: type[Target]) -> TargetRegistry:
        registry = TargetRegistry.from_entry_points()
        registry.register(target_cls())
        return registry

    @pytest.fixture(scope="class")
    @classmethod
    def target_options(cls, target_cls: type[Target]) -> TargetOptions:
        return target_cls.options_model.model_validate(dict(cls.options))

    @pytest.fixture(scope="class")
    @classmethod
    def ir(
        cls, target_cls: type[Target], conformance_spec: Path, registry: TargetRegistry
    ) -> IRGraph:
        from mlc.compiler.api import check
        from mlc.compiler.diagnostics import DiagnosticError, render

        try:
            result = check(conformance_spec, targets=[target_cls.name], registry=registry)
        except DiagnosticError as exc:
            pytest.fail(f"the conformance spec does not compile:\n{render(exc.diagnostics)}")
        if not result.ok:
            pytest.fail(
                f"the spec asks '{target_cls.name}' for what it cannot do; set `spec_path`:\n"
                + render(result.diagnostics)
            )
        return result.ir

    def _context(self, spec: Path, options: TargetOptions) -> EmitContext:
        return EmitContext(options=options, project_dir=str(spec.parent))

    # -- declarations ----------------------------------------------------------------------------

    def test_is_a_target(self, target_cls: type[Target]) -> None:
        assert isinstance(target_cls, type) and issubclass(target_cls, Target)
        assert not getattr(target_cls, "__abstractmethods__", None), "emit must be implemented"

    def test_name_and_description(self, target_cls: type[Target]) -> None:
        assert _NAME.match(target_cls.name), (
            f"name {target_cls.name!r}: lower-case letters, digits, '-' or '_', a letter first"
        )
        assert target_cls.description.strip(), "say in one line what the target emits"

    def test_entry_point_matches(self, target_cls: type[Target]) -> None:
        """If installed, the `mlc.targets` entry point of this name must load this class."""
        entry = TargetRegistry.from_entry_points().entries.get(target_cls.name)
        if entry is None:
            return  # not installed as a plugin (yet): nothing to compare
        loaded = entry.load()
        assert loaded is target_cls or isinstance(loaded, target_cls), (
            f"entry point '{target_cls.name}' = {entry.value} is not {target_cls.__qualname__}"
        )

    def test_options_model_is_strict(self, target_cls: type[Target]) -> None:
        model = target_cls.options_model
        assert issubclass(model, TargetOptions), "options_model must subclass TargetOptions"
        assert model.model_config.get("extra") == "forbid"
        with pytest.raises(ValidationError) as info:
            model.model_validate({**type(self).options, "no_such_option_xyz": 1})
        assert any(e["type"] == "extra_forbidden" for e in info.value.errors())

    def test_options_validate(self, target_options: TargetOptions) -> None:
        # Options are frozen: a target must not change them while emitting.
        assert target_options.model_config.get("frozen") is True
        json.dumps(target_options.model_dump(mode="json"))

    def test_capabilities_declared(self, target_cls: type[Target]) -> None:
        caps = target_cls.capabilities
        assert isinstance(caps, Capabilities)
        assert all(isinstance(k, StepKind) for k in caps.realises)
        for feature in caps.supports:
            assert isinstance(feature, str) and _FEATURE.match(feature), (
                f"capability {feature!r}: dotted lower-case names, e.g. 'resources.gpu'"
            )
        if target_cls.inspection:
            assert not caps.realises, "an inspection target realises no step kinds"
        described = caps.describe()
        assert described == json.loads(json.dumps(described))
        assert described["realises"] == sorted(described["realises"])
        assert described["supports"] == sorted(described["supports"])

    def test_capabilities_consistent(self, target_cls: type[Target], ir: IRGraph) -> None:
        """Every requirement of a realised step in the conformance IR is supported."""
        caps = target_cls.capabilities
        missing = sorted(
            {
                (step.id, req.feature)
                for step in ir.steps
                if step.kind in caps.realises
                for req in step.requires
                if req.feature not in caps.supports
            }
        )
        assert not missing, f"realised steps ask for unsupported features: {missing}"

    # -- emit ------------------------------------------------------------------------------------

    def test_emit_files(
        self,
        target_cls: type[Target],
        ir: IRGraph,
        conformance_spec: Path,
        target_options: TargetOptions,
    ) -> None:
        files = target_cls().emit(ir, self._context(conformance_spec, target_options))
        assert isinstance(files, Mapping)
        assert files, "emit returned no files"
        assert check_emitted(files) == []
        for path, content in files.items():
            assert isinstance(path, str)
            assert PurePosixPath(path).as_posix() == path and not path.startswith("./"), (
                f"{path!r} is not a normalised POSIX path"
            )
            assert path != MANIFEST_NAME, f"{MANIFEST_NAME} is written by the compiler"
            assert isinstance(content, str | bytes)

    def test_emit_is_deterministic(
        self,
        target_cls: type[Target],
        ir: IRGraph,
        conformance_spec: Path,
        target_options: TargetOptions,
    ) -> None:
        ctx = self._context(conformance_spec, target_options)
        first = _digests(target_cls().emit(ir, ctx))
        second = _digests(target_cls().emit(ir, ctx))
        assert first == second

    def test_emit_is_deterministic_across_processes(
        self,
        target_cls: type[Target],
        ir: IRGraph,
        conformance_spec: Path,
        target_options: TargetOptions,
    ) -> None:
        if "<locals>" in target_cls.__qualname__:
            pytest.fail("define the target at module level so a fresh process can import it")
        here = _digests(target_cls().emit(ir, self._context(conformance_spec, target_options)))
        args = [
            "-c",
            _EMIT_SCRIPT,
            target_cls.__module__,
            target_cls.__qualname__,
            str(conformance_spec),
            json.dumps(dict(type(self).options)),
        ]
        runs = [
            json.loads(_run_python(args, {"PYTHONHASHSEED": seed}, Path.cwd()))
            for seed in ("1", "4242")
        ]
        assert runs[0] == runs[1], "output depends on PYTHONHASHSEED (set iteration order?)"
        assert runs[0] == here, "output differs between processes"

    def test_emit_does_not_mutate_ir(
        self,
        target_cls: type[Target],
        ir: IRGraph,
        conformance_spec: Path,
        target_options: TargetOptions,
    ) -> None:
        before = ir.to_json()
        target_cls().emit(ir, self._context(conformance_spec, target_options))
        assert ir.to_json() == before, "emit changed the IR; targets must only read it"

    def test_module_imports_light(self, target_cls: type[Target]) -> None:
        out = _run_python(
            ["-c", _IMPORT_SCRIPT, target_cls.__module__, json.dumps(HEAVY_MODULES)],
            {},
            Path.cwd(),
        )
        heavy = json.loads(out)
        assert heavy == [], (
            f"importing {target_cls.__module__} imports {heavy}; import them inside emit()"
        )

    def test_check_returns_diagnostics(
        self,
        target_cls: type[Target],
        ir: IRGraph,
        conformance_spec: Path,
        target_options: TargetOptions,
    ) -> None:
        found = target_cls().check(ir, self._context(conformance_spec, target_options))
        assert isinstance(found, list)
        for diag in found:
            assert isinstance(diag, Diagnostic)
            assert diag.location is not None or diag.path, (
                f"{diag.code}: set `path=` to the dotted spec key so the compiler can locate it"
            )

    def test_compile_writes_manifest(
        self,
        target_cls: type[Target],
        conformance_spec: Path,
        registry: TargetRegistry,
        tmp_path: Path,
    ) -> None:
        from mlc.compiler.api import compile_spec

        name = target_cls.name
        result = compile_spec(conformance_spec, [name], tmp_path, registry=registry)
        folder = tmp_path / name
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        on_disk = sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and p.name != MANIFEST_NAME
        )
        assert sorted(manifest["files"]) == on_disk
        for rel, digest in manifest["files"].items():
            assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest, rel
        assert manifest["target"] == name
        assert sorted(result.written[name]) == sorted(
            [folder / p for p in on_disk] + [folder / MANIFEST_NAME]
        )
