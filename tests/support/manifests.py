"""The serving targets' files as a test reads them, and their strict schema check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from mlc.compiler.api import compile_spec
from mlc.compiler.registry import TargetRegistry
from mlc.targets.ir import IRTarget
from mlc.targets.k8s import K8sTarget
from mlc.targets.kserve import KServeTarget
from mlc.targets.monitoring import MonitoringTarget
from support import CREDIT
from support.crd import known_kinds, validate_custom

K8S_VERSION = "1.30"


def registry() -> TargetRegistry:
    """Only the targets under test, so that other installed plugins cannot interfere."""
    reg = TargetRegistry()
    for target in (KServeTarget(), K8sTarget(), MonitoringTarget(), IRTarget()):
        reg.register(target)
    return reg


def emit(tmp_path: Path, target: str, overrides: list[str]) -> dict[str, list[dict[str, Any]]]:
    compile_spec(CREDIT, [target], tmp_path, overrides, registry())
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((tmp_path / target).rglob("*.yaml")):
        out[path.relative_to(tmp_path / target).as_posix()] = [
            d for d in yaml.safe_load_all(path.read_text()) if d
        ]
    return out


def validate_all(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Strict errors of every document: core kinds by kubernetes-validate, others by CRD."""
    problems = []
    for path, docs in files.items():
        for doc in docs:
            if (doc["apiVersion"], doc["kind"]) in known_kinds():
                problems += [f"{path} {doc['kind']}: {e}" for e in validate_custom(doc)]
            else:
                try:
                    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    problems.append(f"{path} {doc['kind']}: {exc}")
    return problems


def kinds(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    return sorted(d["kind"] for docs in files.values() for d in docs)
