"""The library behind the CLI: every `mlc` command is one call here, returning a result the
command prints.

Checking and compiling (`check`, `compile_spec`), running here (`run`, `monitor`, `batch`,
`serve_plan`, `loop`),
a project's state (`runs`, `lineage`, `cache_info`, `cache_gc`, `audit_verify`,
`audit_records`) and review (`plan`, `cost`, `diff`). Importing this package stays light
(`mlc validate` imports it): each function imports what it needs (pandas, MLflow, the runtime)
when it is called.
"""

from __future__ import annotations

from mlc.compiler.api._batch import BatchError, BatchResult, batch
from mlc.compiler.api._check import (
    CheckResult,
    CompileResult,
    UsageError,
    check,
    compile_spec,
    record_compile,
    warnings_of,
)
from mlc.compiler.api._loop import LoopBusy, LoopResult, loop
from mlc.compiler.api._monitor import (
    MonitorError,
    MonitorResult,
    ScoredModel,
    monitor,
    monitor_params,
    pick_model,
)
from mlc.compiler.api._review import cost, diff, plan
from mlc.compiler.api._run import (
    AuditVerification,
    PipelineRun,
    audit_records,
    audit_verify,
    cache_gc,
    cache_info,
    lineage,
    run,
    runs,
)
from mlc.compiler.api._serve import ServeError, ServePlan, serve_plan
from mlc.compiler.sourcemap import dotted

__all__ = [
    "AuditVerification",
    "BatchError",
    "BatchResult",
    "CheckResult",
    "CompileResult",
    "LoopBusy",
    "LoopResult",
    "MonitorError",
    "MonitorResult",
    "PipelineRun",
    "ScoredModel",
    "ServeError",
    "ServePlan",
    "UsageError",
    "audit_records",
    "audit_verify",
    "batch",
    "cache_gc",
    "cache_info",
    "check",
    "compile_spec",
    "cost",
    "diff",
    "dotted",
    "lineage",
    "loop",
    "monitor",
    "monitor_params",
    "pick_model",
    "plan",
    "record_compile",
    "run",
    "runs",
    "serve_plan",
    "warnings_of",
]
