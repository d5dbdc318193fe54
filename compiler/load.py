"""Loading a spec: YAML with positions, overlays (Hydra defaults lists), overrides, interpolation.

The result is a plain dict plus a `SourceMap` from every key path to the place that set it.
Merging follows Hydra: the `defaults:` list names overlays merged in order; `_self_` marks where
the file's own content goes (at the end when absent, as in Hydra); `{group: option}` entries load
`group/option.yaml` and a `group=option` override picks another option. Overlays merge at the
root of the spec (Hydra's `@package _global_`). Overrides use Hydra's grammar: `key=value`,
`+key=value` (add), `++key=value` (add or change), `~key` (delete).
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, SourceLocation, did_you_mean
from mlc.compiler.sourcemap import KeyPath, SourceMap, Span, dotted

MAX_SPEC_BYTES = 4 * 1024 * 1024
"""Larger files are refused before parsing: no spec needs that much, and YAML parsing is slow."""

OVERRIDE_FILE = "<override>"


@dataclass
class LoadedSpec:
    """A composed, resolved spec as plain data, with its source map and the files it read."""

    data: dict[str, Any]
    source_map: SourceMap
    root: Path
    files: list[Path] = field(default_factory=list)

    @property
    def project_dir(self) -> Path:
        return self.root.parent


def display_path(path: Path) -> str:
    """A path as shown in diagnostics: relative to the working directory when below it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _loc(file: str, mark: Any) -> SourceLocation:
    return SourceLocation(file, mark.line + 1, mark.column + 1)


def read_yaml(path: Path) -> tuple[dict[str, Any], SourceMap]:
    """Read one YAML mapping with positions; raise `DiagnosticError` for every file problem."""
    shown = display_path(path)
    start = SourceLocation(shown, 1, 1)
    if not path.exists():
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC001",
                    f"file not found: {shown}",
                    None,
                    "check the path; overlays are relative to their file",
                )
            ]
        )
    if path.is_dir():
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC001",
                    f"{shown} is a directory, not a spec file",
                    None,
                    "pass the spec file, e.g. mlc.yaml",
                )
            ]
        )
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC004",
                    f"spec file is too large ({size} bytes; the limit is {MAX_SPEC_BYTES})",
                    start,
                    "split it into overlays, or move data out of the spec",
                )
            ]
        )
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC003",
                    "this is a binary file, not a YAML spec",
                    start,
                    "pass a UTF-8 YAML file",
                )
            ]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC003",
                    f"file is not valid UTF-8 (byte {exc.start})",
                    start,
                    "save the spec as UTF-8",
                )
            ]
        ) from None
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        raise DiagnosticError(
            [Diagnostic("MLC005", "spec file is empty", start, "run 'mlc init' to scaffold a spec")]
        )
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.composer.ComposerError as exc:
            mark = exc.problem_mark or exc.context_mark
            if "document" not in f"{exc.context} {exc.problem}":
                # an undefined alias or the like: a syntax error, not a second document
                raise DiagnosticError(
                    [
                        Diagnostic(
                            "MLC002",
                            f"YAML error: {exc.problem or exc.context}",
                            _loc(shown, mark) if mark else start,
                            "define each anchor (&name) before an alias (*name) uses it",
                        )
                    ]
                ) from None
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC006",
                        "a spec file holds one YAML document",
                        _loc(shown, mark) if mark else start,
                        "remove the '---' separators",
                    )
                ]
            ) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid YAML"
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC002",
                        f"YAML syntax error: {problem}",
                        _loc(shown, mark) if mark else start,
                        "check indentation, quotes and ':' around this place",
                    )
                ]
            ) from None
        except yaml.YAMLError as exc:
            raise DiagnosticError([Diagnostic("MLC002", f"YAML error: {exc}", start)]) from None
        if node is None:
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC005", "spec file is empty", start, "run 'mlc init' to scaffold a spec"
                    )
                ]
            )
        if not isinstance(node, yaml.MappingNode):
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC007",
                        "the top level of a spec must be a mapping of sections",
                        _loc(shown, node.start_mark),
                        "start with 'name: my-model' and sections",
                    )
                ]
            )
        smap = SourceMap()
        errors: list[Diagnostic] = []
        try:
            data = _construct(loader, node, (), shown, smap, errors)
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC002",
                        f"YAML error: {exc.problem or exc.context}",
                        _loc(shown, mark) if mark else start,
                    )
                ]
            ) from None
        except RecursionError:
            raise DiagnosticError(
                [Diagnostic("MLC002", "YAML nesting is too deep", start)]
            ) from None
    finally:
        loader.dispose()
    if errors:
        raise DiagnosticError(errors)
    smap.set((), Span(None, start))
    assert isinstance(data, dict)
    return data, smap


def _construct(
    loader: Any, node: Any, path: KeyPath, file: str, smap: SourceMap, errors: list[Diagnostic]
) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key_loc = _loc(file, key_node.start_mark)
            if not isinstance(key, str):
                errors.append(
                    Diagnostic(
                        "MLC009",
                        f"keys are names, not {type(key).__name__} values ({key!r})",
                        key_loc,
                        f"quote it: '\"{key}\"'",
                    )
                )
                continue
            if key in out:
                first = smap.span((*path, key))
                where = f" (first at line {first.key.line})" if first and first.key else ""
                errors.append(
                    Diagnostic(
                        "MLC008",
                        f"duplicate key '{key}'{where}",
                        key_loc,
                        "YAML keeps only the last; remove one",
                    )
                )
                continue
            child = (*path, key)
            smap.set(child, Span(key_loc, _loc(file, value_node.start_mark)))
            out[key] = _construct(loader, value_node, child, file, smap, errors)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            child = (*path, i)
            smap.set(child, Span(None, _loc(file, item.start_mark)))
            items.append(_construct(loader, item, child, file, smap, errors))
        return items
    value = loader.construct_object(node, deep=True)
    if isinstance(value, datetime.date | datetime.datetime):
        # YAML timestamps would reach models as objects; the spec language speaks strings.
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _merge(
    base: dict[str, Any],
    base_map: SourceMap,
    over: dict[str, Any],
    over_map: SourceMap,
    path: KeyPath = (),
) -> None:
    """Deep-merge `over` into `base` in place: mappings merge, everything else is replaced."""
    for key, value in over.items():
        child = (*path, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            span = over_map.span(child)
            if span is not None and base_map.span(child) is None:
                base_map.set(child, span)
            _merge(base[key], base_map, value, over_map, child)
            continue
        base[key] = value
        base_map.drop_subtree(child)
        for sub in over_map:
            if sub[: len(child)] == child:
                span = over_map.span(sub)
                if span is not None:
                    base_map.set(sub, span)


@dataclass
class _Override:
    text: str
    kind: str  # "change" | "add" | "force" | "delete"
    key: str
    value: Any
    location: SourceLocation


_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_SIMPLE_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_SIMPLE_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+")
_SIMPLE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[-/.][A-Za-z0-9_]+)*")
_HYDRA_WORDS = frozenset({"true", "false", "null", "inf", "nan"})


def _simple_value(text: str) -> tuple[bool, Any]:
    """(True, value) for the plain values most overrides carry, read as Hydra reads them."""
    if _SIMPLE_INT.fullmatch(text):
        return True, int(text)
    if _SIMPLE_FLOAT.fullmatch(text):
        return True, float(text)
    if text in ("true", "false"):
        return True, text == "true"
    if text == "null":
        return True, None
    if _SIMPLE_WORD.fullmatch(text) and text.lower() not in _HYDRA_WORDS:
        return True, text
    return False, None


def _simple_override(text: str, location: SourceLocation) -> _Override | None:
    """`dotted.key=plain-value` without Hydra (importing it costs ~0.4 s); None otherwise.

    Only forms whose meaning is unambiguous are taken: a dotted key of identifiers and an
    integer, decimal, `true`/`false`/`null` or a word (letters, digits, `_`, and `-`, `/`, `.`
    between them). Anything else — prefixes, lists, quotes, interpolation, sweeps, odd
    spellings such as `TRUE` or `1_000` — goes through Hydra's parser; a test holds the two
    to the same values.
    """
    key, eq, raw = text.partition("=")
    if not eq or not _SIMPLE_KEY.fullmatch(key):
        return None
    ok, value = _simple_value(raw)
    return _Override(text, "change", key, value, location) if ok else None


def parse_overrides(overrides: list[str]) -> list[_Override]:
    """Parse `key=value` overrides with Hydra's grammar; every bad one becomes a diagnostic."""
    if not overrides:
        return []
    col = 1
    simple: list[_Override] = []
    for text in overrides:
        found = _simple_override(text, SourceLocation(OVERRIDE_FILE, 1, col))
        if found is None:
            break
        simple.append(found)
        col += len(text) + 1
    else:
        return simple
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed: list[_Override] = []
    errors: list[Diagnostic] = []
    col = 1
    for text in overrides:
        location = SourceLocation(OVERRIDE_FILE, 1, col)
        col += len(text) + 1
        try:
            (ov,) = parser.parse_overrides([text])
            if ov.is_sweep_override():
                errors.append(
                    Diagnostic(
                        "MLC021",
                        f"'{text}' is a sweep; mlc takes one value",
                        location,
                        "use tuning.search_space for searches",
                    )
                )
                continue
            kind = {
                OverrideType.CHANGE: "change",
                OverrideType.ADD: "add",
                OverrideType.FORCE_ADD: "force",
                OverrideType.DEL: "delete",
            }[ov.type]
            value = None if kind == "delete" else ov.value()
            if ov.package is not None:
                errors.append(
                    Diagnostic("MLC021", f"'{text}': packages ('@') are not supported", location)
                )
                continue
            parsed.append(_Override(text, kind, ov.key_or_group, value, location))
        except (HydraException, ValueError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid override"
            errors.append(
                Diagnostic(
                    "MLC020",
                    f"invalid override '{text}': {message}",
                    location,
                    "write key=value, +key=value, ++key=value or ~key "
                    "(e.g. training.model.params.max_iter=200)",
                )
            )
    if errors:
        raise DiagnosticError(errors)
    return parsed


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedSpec:
    """Compose a spec from its file, overlays and overrides, and resolve interpolations.

    Raises:
        DiagnosticError: with every problem found, each located.
    """
    root = Path(path)
    parsed = parse_overrides(list(overrides))
    groups = {ov.key: ov for ov in parsed if ov.kind == "change" and "." not in ov.key}
    used_groups: set[str] = set()
    files: list[Path] = []
    data, smap = _compose(root, groups, used_groups, files, ())
    errors: list[Diagnostic] = []
    for ov in parsed:
        if ov.key in used_groups and ov is groups.get(ov.key):
            continue
        _apply_override(data, smap, ov, errors)
    if errors:
        raise DiagnosticError(errors)
    data = _interpolate(data, smap)
    return LoadedSpec(data=data, source_map=smap, root=root, files=files)


def _compose(
    path: Path,
    groups: dict[str, _Override],
    used: set[str],
    files: list[Path],
    stack: tuple[Path, ...],
    included_at: SourceLocation | None = None,
) -> tuple[dict[str, Any], SourceMap]:
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(display_path(p) for p in (*stack, resolved))
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC012",
                    f"overlays include each other: {chain}",
                    included_at or SourceLocation(display_path(path), 1, 1),
                )
            ]
        )
    files.append(path)
    data, smap = read_yaml(path)
    shown = display_path(path)
    defaults = data.pop("defaults", None)
    if defaults is None:
        return data, smap
    defaults_span = smap.span(("defaults",))
    if not isinstance(defaults, list):
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC010",
                    "'defaults' must be a list of overlay files",
                    defaults_span.value if defaults_span else None,
                    "write e.g. 'defaults: [_self_, env/dev.yaml]' or '- env: dev'",
                )
            ]
        )
    entries: list[tuple[str, Path | None, SourceLocation | None]] = []
    errors: list[Diagnostic] = []
    for i, entry in enumerate(defaults):
        span = smap.span(("defaults", i))
        where = span.value if span else None
        if entry == "_self_":
            entries.append(("self", None, where))
        elif isinstance(entry, str) and entry:
            entries.append(("file", path.parent / entry, where))
        elif isinstance(entry, dict) and len(entry) == 1:
            ((group, option),) = entry.items()
            option_span = smap.span(("defaults", i, group))
            if option_span is not None:
                where = option_span.value
            choice = groups.get(group)
            if choice is not None:
                used.add(group)
                option = choice.value
                where = choice.location
            if option is None:
                continue
            if not isinstance(option, str):
                errors.append(
                    Diagnostic("MLC011", f"option of group '{group}' must be a name", where)
                )
                continue
            candidate = path.parent / group / f"{option}.yaml"
            if not candidate.exists():
                available = sorted(p.stem for p in (path.parent / group).glob("*.yaml"))
                errors.append(
                    Diagnostic(
                        "MLC011",
                        f"no option '{option}' in overlay group '{group}'",
                        where,
                        did_you_mean(option, available, "options")
                        if available
                        else f"create {display_path(candidate)}",
                    )
                )
                continue
            entries.append(("file", candidate, where))
        else:
            errors.append(
                Diagnostic(
                    "MLC010",
                    f"invalid defaults entry {entry!r}",
                    where,
                    "entries are file paths, '_self_', or '{group: option}'",
                )
            )
    if errors:
        raise DiagnosticError(errors)
    if not any(kind == "self" for kind, _, _ in entries):
        entries.append(("self", None, None))
    merged: dict[str, Any] = {}
    merged_map = SourceMap()
    merged_map.set((), Span(None, SourceLocation(shown, 1, 1)))
    for kind, overlay, where in entries:
        if kind == "self":
            _merge(merged, merged_map, data, smap)
            continue
        assert overlay is not None
        if not overlay.exists():
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC001",
                        f"overlay not found: {display_path(overlay)}",
                        where,
                        "paths in 'defaults' are relative to the file that lists them",
                    )
                ]
            )
        sub, sub_map = _compose(overlay, groups, used, files, (*stack, resolved), where)
        _merge(merged, merged_map, sub, sub_map)
    return merged, merged_map


def _apply_override(
    data: dict[str, Any], smap: SourceMap, ov: _Override, errors: list[Diagnostic]
) -> None:
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in ov.key.split(".")]
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        nxt = _child(node, part)
        if nxt is _MISSING:
            if ov.kind in ("add", "force") and isinstance(node, dict):
                node[part] = {}
                nxt = node[part]
                # the mapping exists because of this override: problems in it point here,
                # not at the nearest ancestor the file wrote
                smap.set(tuple(parts[: depth + 1]), Span(ov.location, ov.location))
            else:
                prefix = ".".join(str(p) for p in parts[: depth + 1])
                hint = _misspelt_hint(parts[: depth + 1], node)
                errors.append(
                    Diagnostic(
                        "MLC022",
                        f"cannot override '{ov.key}': '{prefix}' is not in the spec",
                        ov.location,
                        hint or f"use +{ov.key}=… to add a new key",
                    )
                )
                return
        node = nxt
    last = parts[-1]
    exists = _child(node, last) is not _MISSING
    path = tuple(parts)
    if ov.kind == "delete":
        if not exists:
            present = [str(k) for k in node] if isinstance(node, dict) else []
            close = did_you_mean(str(last), present)
            errors.append(
                Diagnostic(
                    "MLC022",
                    f"cannot delete '{ov.key}': it is not in the spec",
                    ov.location,
                    close if close.startswith("did you mean") else "",
                )
            )
            return
        del node[last]
        smap.drop(path)
        return
    if ov.kind == "change" and not exists and not isinstance(node, dict):
        # under a mapping, a key the file leaves at its default may be set (as in Hydra with a
        # schema); the spec models then report keys they do not know, with a did-you-mean
        errors.append(
            Diagnostic(
                "MLC022",
                f"cannot override '{ov.key}': key not in the spec",
                ov.location,
                f"use +{ov.key}=… to add it",
            )
        )
        return
    if ov.kind == "add" and exists:
        errors.append(
            Diagnostic(
                "MLC023",
                f"cannot add '{ov.key}': it is already set",
                ov.location,
                f"use {ov.key}=… to change it",
            )
        )
        return
    if isinstance(node, list) and (not isinstance(last, int) or last > len(node)):
        errors.append(
            Diagnostic("MLC022", f"cannot set '{ov.key}': index out of range", ov.location)
        )
        return
    if isinstance(node, list) and last == len(node):
        node.append(ov.value)
    elif isinstance(node, list) and isinstance(last, int):
        node[last] = ov.value
    elif isinstance(node, dict):
        node[last] = ov.value
    else:
        errors.append(
            Diagnostic("MLC022", f"cannot set '{ov.key}': its parent is a value", ov.location)
        )
        return
    smap.drop_subtree(path)
    smap.set(path, Span(ov.location, ov.location))
    _mark(smap, path, ov.value, ov.location)


def _misspelt_hint(path: list[str | int], node: Any) -> str:
    """'did you mean' for a path part that is neither in the spec nor a key the models know."""
    word = path[-1]
    if not isinstance(word, str):
        return ""
    # imported here: validation imports this module, and only a failed override needs it
    from mlc.compiler.validate import spec_keys_at

    known = spec_keys_at(tuple(path[:-1]))
    if isinstance(node, dict):
        known = [*known, *(str(k) for k in node)]
    if word in known:
        return ""  # a valid key the file leaves out: adding it is the answer
    hint = did_you_mean(word, known)
    return hint if hint.startswith("did you mean") else ""


def _mark(smap: SourceMap, path: KeyPath, value: Any, location: SourceLocation) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            smap.set((*path, k), Span(location, location))
            _mark(smap, (*path, k), v, location)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            smap.set((*path, i), Span(None, location))
            _mark(smap, (*path, i), v, location)


_MISSING = object()


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part, _MISSING) if isinstance(part, str) else node.get(str(part), _MISSING)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _MISSING


def _interpolated_paths(tree: Any, path: KeyPath = ()) -> list[KeyPath]:
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _interpolated_paths(v, (*path, k))]
    if isinstance(tree, list):
        return [p for i, v in enumerate(tree) for p in _interpolated_paths(v, (*path, i))]
    return [path] if isinstance(tree, str) and "${" in tree else []


def _unparsable(
    data: dict[str, Any], paths: list[KeyPath], smap: SourceMap, exc: Exception
) -> list[Diagnostic]:
    """Locate the interpolations that OmegaConf cannot parse (it names none of them)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    hint = "interpolations are ${other.key} or ${oc.env:VAR} or ${oc.env:VAR,default}"
    out = []
    for path in paths:
        value: Any = data
        for part in path:
            value = value[part]
        try:
            OmegaConf.create({"value": value})
        except OmegaConfBaseException as one:
            message = str(one).splitlines()[0].strip() or type(one).__name__
            out.append(
                Diagnostic(
                    "MLC030",
                    f"cannot parse interpolation {value!r}: {message}",
                    smap.locate(path),
                    hint,
                    path=dotted(path),
                )
            )
    return out or [Diagnostic("MLC030", f"cannot interpolate: {exc}", smap.locate(()), hint)]


def _interpolate(data: dict[str, Any], smap: SourceMap) -> dict[str, Any]:
    """Resolve `${…}` with OmegaConf (only imported when a spec uses interpolation)."""
    paths = _interpolated_paths(data)
    if not paths:
        return data
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = OmegaConf.create(data)
    except OmegaConfBaseException as exc:
        raise DiagnosticError(_unparsable(data, paths, smap, exc)) from None
    errors: list[Diagnostic] = []
    for path in paths:
        try:
            node: Any = cfg
            for part in path:
                node = node[part]
            if isinstance(node, DictConfig | ListConfig):
                node = OmegaConf.to_container(node, resolve=True)
        except (OmegaConfBaseException, ValueError, TypeError) as exc:
            message = str(exc).splitlines()[0].strip() or type(exc).__name__
            errors.append(
                Diagnostic(
                    "MLC030",
                    f"cannot resolve interpolation: {message}",
                    smap.locate(path),
                    "interpolations are ${other.key} or ${oc.env:VAR} or ${oc.env:VAR,default}",
                    path=dotted(path),
                )
            )
            continue
        target: Any = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = node
    if errors:
        raise DiagnosticError(errors)
    return data
