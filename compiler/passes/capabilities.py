"""Target capabilities: nothing a spec asks for is silently dropped.

For each selected target and each step it realises, every requirement of the step must be among
the target's supported features, else an error names the setting (MLC410). A spec section whose
steps no selected target realises gets a warning naming the targets that would (MLC420), and so
does a setting of `TARGET_SETTINGS` that the spec sets and no selected target claims in its
`Capabilities.settings` (MLC421). Those warnings come with one summary note (MLC419): people read
the note (`condense`), `--verbose` and `--format json` show every detail.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlc.compiler.diagnostics import Diagnostic, Severity
from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.compiler.passes.base import PassContext, parse_path

if TYPE_CHECKING:
    from mlc.targets.base import Target

SUMMARY_CODE = "MLC419"
DETAIL_CODES = frozenset({"MLC420", "MLC421"})


@dataclass(frozen=True)
class TargetSetting:
    """A spec setting that does nothing unless a target's output acts on it."""

    path: str
    """Dotted spec key path (no list indices); what targets list in `Capabilities.settings`."""
    kind: StepKind | None
    """The step whose params carry the value (None: the IR's `settings`)."""
    keys: tuple[str, ...]
    """Where the value sits in those params."""
    effect: str
    """What realising it means, for the diagnostic."""


TARGET_SETTINGS: tuple[TargetSetting, ...] = (
    TargetSetting(
        "budgets.idle_shutdown",
        None,
        ("budgets", "idle_shutdown"),
        "shutting idle serving and training resources down",
    ),
    TargetSetting(
        "monitoring.drift.schedule",
        StepKind.MONITOR,
        ("drift", "schedule"),
        "a scheduled drift job",
    ),
    TargetSetting(
        "monitoring.performance.schedule",
        StepKind.MONITOR,
        ("performance", "schedule"),
        "a scheduled performance job",
    ),
    TargetSetting(
        "monitoring.performance.label_delay",
        StepKind.MONITOR,
        ("performance", "label_delay"),
        "joining predictions with labels that arrive late",
    ),
)
"""Settings realised only in some target's output. A target that acts on one lists its `path` in
`Capabilities.settings`; cost and plan count the jobs these settings start only then."""


def _value(ir: IRGraph, setting: TargetSetting) -> Any:
    if setting.kind is None:
        node: Any = ir.settings
    else:
        step = ir.first(setting.kind)
        if step is None:
            return None
        node = step.params
    for key in setting.keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def set_settings(ir: IRGraph, ctx: PassContext) -> list[TargetSetting]:
    """The `TARGET_SETTINGS` this spec sets: written by its author (defaults ask for nothing)
    with a value other than null or false."""
    out = []
    for setting in TARGET_SETTINGS:
        value = _value(ir, setting)
        if value is None or value is False:
            continue
        # an IR without a source map (built in code) counts every value as written
        if len(ctx.source_map) and parse_path(setting.path) not in ctx.source_map:
            continue
        out.append(setting)
    return out


def claimed_settings(targets: Sequence[Target]) -> frozenset[str]:
    """The `TARGET_SETTINGS` paths that some of `targets` act on."""
    return frozenset(s for t in targets if not t.inspection for s in t.capabilities.settings)


def _able(step: Step, available: Sequence[Target]) -> list[str]:
    """Targets that would realise `step`: those honouring all its requirements, else any that
    realise its kind."""
    kind = [t for t in available if step.kind in t.capabilities.realises]
    full = [t for t in kind if all(r.feature in t.capabilities.supports for r in step.requires)]
    return sorted(t.name for t in full or kind)


def _section(origin: str) -> str:
    return origin.split(".")[0].split("[")[0]


def check_capabilities(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    selected = [t for t in ctx.targets if not t.inspection]
    if not selected:
        return
    names = ", ".join(sorted(t.name for t in selected))
    # section -> (first origin, kinds, targets that would realise them): one warning per section
    unrealised: dict[str, tuple[str, list[StepKind], set[str]]] = {}
    for step in ir.steps:
        realisers = [t for t in selected if step.kind in t.capabilities.realises]
        section = _section(step.origin)
        # Storage and identities exist in every IR; a spec that never wrote their section
        # asked nothing of a target (a warning would point at 1:1, at nothing).
        written = not len(ctx.source_map) or (section,) in ctx.source_map
        if not realisers and written:
            _, kinds, able = unrealised.setdefault(section, (step.origin, [], set()))
            if step.kind not in kinds:
                kinds.append(step.kind)
            able.update(_able(step, ctx.available))
        for target in realisers:
            for req in step.requires:
                if req.feature not in target.capabilities.supports:
                    able_for = sorted(
                        t.name
                        for t in ctx.available
                        if step.kind in t.capabilities.realises
                        and req.feature in t.capabilities.supports
                    )
                    hint = "remove or change the setting" + (
                        f", or compile with --target {' / '.join(able_for)}" if able_for else ""
                    )
                    yield ctx.diag(
                        "MLC410",
                        f"target '{target.name}' cannot honour '{req.feature}' for step "
                        f"'{step.id}'",
                        req.origin,
                        hint,
                    )
    suggest: set[str] = set()
    for section, (origin, kinds, able) in sorted(unrealised.items()):
        suggest |= able
        hint = (
            f"add --target {' or --target '.join(sorted(able))}"
            if able
            else "no installed target realises it yet"
        )
        listed = ", ".join(k.value for k in kinds)
        yield ctx.diag(
            "MLC420",
            f"'{section}' ({listed}) is not realised by: {names}",
            origin,
            hint,
            Severity.WARNING,
        )
    claimed = claimed_settings(selected)
    inert = []
    for setting in set_settings(ir, ctx):
        if setting.path in claimed:
            continue
        claimers = sorted(
            t.name
            for t in ctx.available
            if not t.inspection and setting.path in t.capabilities.settings
        )
        suggest.update(claimers)
        if _section(setting.path) not in unrealised:
            inert.append(setting.path)
        yield ctx.diag(
            "MLC421",
            f"{setting.path} is not realised by any selected target ({names}): nothing "
            f"acts on it ({setting.effect})",
            setting.path,
            f"add --target {' or --target '.join(claimers)}"
            if claimers
            else "no installed target realises it yet; remove it or expect no effect",
            Severity.WARNING,
        )
    if not unrealised and not inert:
        return
    parts = sorted(unrealised) + inert
    action = [f"add --target {'/'.join(sorted(suggest))}"] if suggest else []
    yield Diagnostic(
        SUMMARY_CODE,
        f"not realised by the selected targets ({names}): {', '.join(parts)} — "
        + "; ".join([*action, "--verbose for details"]),
        severity=Severity.NOTE,
    )


def condense(diagnostics: Sequence[Diagnostic], verbose: bool = False) -> list[Diagnostic]:
    """What a person reads: the one summary note instead of every MLC420/MLC421 warning, or
    (`verbose`) the warnings without the note. Machine formats keep everything."""
    if verbose:
        return [d for d in diagnostics if d.code != SUMMARY_CODE]
    return [d for d in diagnostics if d.code not in DETAIL_CODES]
