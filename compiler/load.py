"""Loading a spec: YAML with positions, overlays (Hydra defaults lists), overrides, interpolation.

The result is a plain dict plus a `SourceMap` from every key path to the place that set it.
Merging follows Hydra: the `defaults:` list names overlays merged in order; `_self_` marks where
the file's own content goes (at the end when absent, as in Hydra); `{group: option}` entries load
`group/option.yaml` and a `group=option` override picks another option. Overlays merge at the
root of the spec (Hydra's `@package _global_`). Overrides use Hydra's grammar: `key=value`,
`+key=value` (add), `++key=value` (add or change), `~key` (delete).

Loading is bounded, for specs from many authors run in CI: file size (`MAX_SPEC_BYTES`, MLC004),
bytes over all overlays, files read, nesting depth, YAML nodes and alias expansion
(`MAX_TOTAL_BYTES`, `MAX_OVERLAYS`, `MAX_DEPTH`, `MAX_NODES`, `MAX_ALIAS_NODES`; MLC013 names the
limit passed and its value). Only YAML's plain tags are read; other tags, values that do not fit
their tag, and files that are not regular files on disk (pipes, devices, /proc) are diagnostics.
"""

from __future__ import annotations

import datetime
import errno
import os
import re
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, SourceLocation, did_you_mean
from mlc.compiler.sourcemap import KeyPath, SourceMap, Span, dotted

MAX_SPEC_BYTES = 4 * 1024 * 1024
"""Larger files are refused before parsing: no spec needs that much, and YAML parsing is slow."""

MAX_TOTAL_BYTES = 4 * MAX_SPEC_BYTES
"""Bytes read for one spec, its overlays included: bounds a `defaults:` list that names a large
file many times over."""

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists: real specs stay under 10 levels."""

MAX_NODES = 100_000
"""YAML nodes in one spec, overlays included (the credit example has about 400)."""

MAX_ALIAS_NODES = 10_000
"""Nodes that aliases (`*name`) may expand to in one file. Each alias re-reads its anchor's whole
subtree, so nine nested levels of nine aliases make a 620-byte file expand to 10^9 nodes (the
'billion laughs'); the limit stops that within milliseconds and is far above any real reuse."""

MAX_OVERLAYS = 5_000
"""Files read for one spec: overlays can list each other many times over without a cycle (100
entries of 100 entries of 100 is a million reads); real specs read a handful."""

OVERRIDE_FILE = "<override>"

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(
    _YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp", "value")
)
"""Tags a spec's scalars may carry: YAML's own plain types. Anything else (`!!python/...`,
`!!binary`, `!!set`, local `!tags`) has no meaning in the spec language and is refused."""
_MERGE_TAG = _YAML + "merge"


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


_ALLOWED_TAGS = "!!str, !!int, !!float, !!bool, !!null, !!timestamp, !!map and !!seq"


@dataclass
class LoadedSpec:
    """A composed, resolved spec as plain data, with its source map and the files it read."""

    data: dict[str, Any]
    source_map: SourceMap
    root: Path
    files: list[Path] = field(default_factory=list)
    environment: dict[KeyPath, tuple[str, ...]] = field(default_factory=dict)
    """Key paths whose value was read from the environment (`${oc.env:VAR}`, directly or through
    `${other.key}`) -> the variables read: the validator refuses them outside
    `security.secrets`, since the value would be copied into every emitted file."""

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


class _LimitExceeded(Exception):
    """A loader limit was passed; carries the one diagnostic that says which."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _limit(what: str, name: str, value: int, where: SourceLocation | None, hint: str) -> Diagnostic:
    return Diagnostic("MLC013", f"{what} (the limit is {name} = {value})", where, hint)


@dataclass
class _Budget:
    """What one spec composition has used of the loader limits, overlays included."""

    nodes: int = 0
    bytes: int = 0
    files: int = 0


_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_PSEUDO_ROOTS = ("proc", "sys", "dev")
"""Kernel file systems: their files report size 0 and may never end, none is a spec."""


def _read_bytes(path: Path, shown: str, included_at: SourceLocation | None) -> bytes:
    """The file's bytes, after refusing whatever is not a regular spec file on disk.

    The file is opened non-blocking and checked on the open descriptor, so a named pipe is
    refused instead of waiting for a writer, and nothing can be swapped in between.
    """
    start = SourceLocation(shown, 1, 1)

    def refuse(message: str, hint: str, code: str = "MLC001") -> DiagnosticError:
        return DiagnosticError([Diagnostic(code, message, included_at, hint)])

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and included_at is not None:
            message = f"overlay not found: {shown}"
            hint = "paths in 'defaults' are relative to the file that lists them"
        elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
            message = f"file not found: {shown}"
            hint = "check the path; overlays are relative to their file"
        elif exc.errno == errno.ELOOP:
            message = f"{shown} is a symlink loop (too many levels of symbolic links)"
            hint = "point the link at a spec file"
        else:
            reason = (exc.strerror or type(exc).__name__).lower()
            message = f"cannot read {shown}: {reason}"
            hint = "check the file's permissions"
        raise refuse(message, hint) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise refuse(
                f"{shown} is a directory, not a spec file", "pass the spec file, e.g. mlc.yaml"
            )
        for test, kind in _FILE_KINDS:
            if test(info.st_mode):
                raise refuse(
                    f"{shown} is {kind}, not a regular file",
                    "pass a spec file on disk; mlc does not read specs from pipes or devices",
                )
        real = Path(os.path.realpath(path))
        if len(real.parts) > 1 and real.parts[1] in _PSEUDO_ROOTS:
            raise refuse(
                f"{shown} is a kernel pseudo-file (/{real.parts[1]}), not a spec file",
                "pass a spec file on disk",
            )
        if info.st_size > MAX_SPEC_BYTES:
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC004",
                        f"spec file is too large ({info.st_size} bytes; "
                        f"the limit is {MAX_SPEC_BYTES})",
                        start,
                        "split it into overlays, or move data out of the spec",
                    )
                ]
            )
        chunks: list[bytes] = []
        got = 0
        # bounded even if the file grows while it is read
        while got <= MAX_SPEC_BYTES:
            try:
                chunk = os.read(fd, MAX_SPEC_BYTES + 1 - got)
            except OSError as exc:
                reason = (exc.strerror or type(exc).__name__).lower()
                raise refuse(f"cannot read {shown}: {reason}", "check the file") from None
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > MAX_SPEC_BYTES:
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC004",
                        f"spec file is too large (over {MAX_SPEC_BYTES} bytes; "
                        f"the limit is {MAX_SPEC_BYTES})",
                        start,
                        "split it into overlays, or move data out of the spec",
                    )
                ]
            )
        return b"".join(chunks)
    finally:
        os.close(fd)


_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)


def _count_events(loader_cls: Any, text: str, shown: str, budget: _Budget) -> None:
    """Stop a document with too many nodes before composing it.

    Composing builds (and type-resolves) every node first; the walker counts only afterwards, so
    a 3 MB flow list of 400,000 items took seconds to be refused. The parser's events come at a
    fraction of that cost and carry the position where the limit is passed. Syntax errors are
    left to the composing pass, which reports them.
    """
    room = MAX_NODES - budget.nodes
    if len(text) < room:  # every node takes at least one character
        return
    events = loader_cls(text)
    seen = 0
    try:
        while events.check_event():
            event = events.get_event()
            if isinstance(event, _NODE_EVENTS):
                seen += 1
                if seen > room:
                    raise DiagnosticError(
                        [
                            _limit(
                                f"the spec has more than {MAX_NODES} YAML nodes",
                                "MAX_NODES",
                                MAX_NODES,
                                _loc(shown, event.start_mark),
                                "move data out of the spec",
                            )
                        ]
                    )
    except yaml.YAMLError:
        return
    finally:
        events.dispose()


def read_yaml(
    path: Path,
    included_at: SourceLocation | None = None,
    budget: _Budget | None = None,
) -> tuple[dict[str, Any], SourceMap]:
    """Read one YAML mapping with positions; raise `DiagnosticError` for every file problem.

    `included_at` is the `defaults:` entry that names this file (file problems point there);
    `budget` is shared by the files of one composition so that the limits hold for all of them.
    """
    budget = budget if budget is not None else _Budget()
    shown = display_path(path)
    start = SourceLocation(shown, 1, 1)
    raw = _read_bytes(path, shown, included_at)
    budget.bytes += len(raw)
    if budget.bytes > MAX_TOTAL_BYTES:
        raise DiagnosticError(
            [
                _limit(
                    f"the spec and its overlays are over {MAX_TOTAL_BYTES} bytes",
                    "MAX_TOTAL_BYTES",
                    MAX_TOTAL_BYTES,
                    included_at or start,
                    "list each overlay once; move data out of the spec",
                )
            ]
        )
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
    _count_events(loader_cls, text, shown, budget)
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
        walker = _Walker(loader, shown, smap, errors, budget)
        try:
            data = walker.node(node, (), 0, False, start)
        except _LimitExceeded as exc:
            raise DiagnosticError([exc.diagnostic]) from None
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


_KINDS = {"MappingNode": "mappings", "SequenceNode": "lists"}


class _Walker:
    """Builds plain data and the source map from a composed YAML node graph, within limits.

    PyYAML's composer shares one node object between an anchor and its aliases, so the graph is
    small while the tree it stands for can be exponential. The walk visits the tree, counting
    every node it constructs and those it reaches again through an alias, and stops at the first
    limit passed. Tags are checked here too: the constructor would otherwise ignore tags on
    mappings and lists and raise bare `ValueError`s on scalars such as `!!float abc`.
    """

    def __init__(
        self,
        loader: Any,
        file: str,
        smap: SourceMap,
        errors: list[Diagnostic],
        budget: _Budget,
    ) -> None:
        self.loader = loader
        self.file = file
        self.smap = smap
        self.errors = errors
        self.budget = budget
        self.alias_nodes = 0
        self.seen: set[int] = set()

    def _count(self, node: Any, depth: int, in_alias: bool, where: SourceLocation) -> bool:
        """Count `node` against the limits; True when it is reached again through an alias."""
        if id(node) in self.seen:
            in_alias = True
        else:
            self.seen.add(id(node))
        if depth > MAX_DEPTH:
            raise _LimitExceeded(
                _limit(
                    f"nesting is deeper than {MAX_DEPTH} levels",
                    "MAX_DEPTH",
                    MAX_DEPTH,
                    _loc(self.file, node.start_mark),
                    "flatten the structure; an anchor that includes itself nests without end",
                )
            )
        self.budget.nodes += 1
        if self.budget.nodes > MAX_NODES:
            raise _LimitExceeded(
                _limit(
                    f"the spec has more than {MAX_NODES} YAML nodes",
                    "MAX_NODES",
                    MAX_NODES,
                    _loc(self.file, node.start_mark),
                    "move data out of the spec",
                )
            )
        if in_alias:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise _LimitExceeded(
                    _limit(
                        f"aliases expand to more than {MAX_ALIAS_NODES} nodes",
                        "MAX_ALIAS_NODES",
                        MAX_ALIAS_NODES,
                        where,
                        "aliases (*name) that repeat other aliases multiply; "
                        "write the values out or use overlays",
                    )
                )
        return in_alias

    def node(
        self, node: Any, path: KeyPath, depth: int, in_alias: bool, where: SourceLocation
    ) -> Any:
        in_alias = self._count(node, depth, in_alias, where)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _YAML + "map":
                return self._bad_tag(node)
            return self.mapping(node, path, depth, in_alias)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _YAML + "seq":
                return self._bad_tag(node)
            items = []
            for i, item in enumerate(node.value):
                child = (*path, i)
                item_loc = _loc(self.file, item.start_mark)
                self.smap.set(child, Span(None, item_loc))
                items.append(self.node(item, child, depth + 1, in_alias, where))
            return items
        return self.scalar(node)

    def _bad_tag(self, node: Any) -> None:
        self.errors.append(
            Diagnostic(
                "MLC002",
                f"the YAML tag '{_tag_name(node.tag)}' is not allowed in a spec",
                _loc(self.file, node.start_mark),
                f"remove the tag; specs use plain YAML values ({_ALLOWED_TAGS})",
            )
        )

    def scalar(self, node: Any) -> Any:
        if node.tag not in _SCALAR_TAGS:
            return self._bad_tag(node)
        if node.tag == _YAML + "str":
            return node.value
        if node.tag == _YAML + "value":
            return node.value  # a lone '=' (YAML 1.1's "value" key): text in a spec
        try:
            value = self.loader.yaml_constructors[node.tag](self.loader, node)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's scalar constructors raise ValueError, KeyError, ...
            kind = _tag_name(node.tag)
            shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            # Python refuses to convert integers longer than this (a denial-of-service guard)
            digits = sys.get_int_max_str_digits()
            detail = f" (more than {digits} digits)" if "digits" in str(exc) else ""
            implicit = (
                not node.style
                and self.loader.resolve(yaml.ScalarNode, node.value, (True, False)) == node.tag
            )
            self.errors.append(
                Diagnostic(
                    "MLC002",
                    f"{shown!r} is not a valid {kind} value{detail}",
                    _loc(self.file, node.start_mark),
                    "quote it to keep it as text"
                    if implicit
                    else f"write a valid {kind} value or remove the tag",
                )
            )
            return None
        if isinstance(value, datetime.date | datetime.datetime):
            # YAML timestamps would reach models as objects; the spec language speaks strings.
            return value.isoformat()
        return value

    def mapping(self, node: Any, path: KeyPath, depth: int, in_alias: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        explicit: set[str] = set()
        merges: list[tuple[Any, SourceLocation]] = []
        for key_node, value_node in node.value:
            key_loc = _loc(self.file, key_node.start_mark)
            if key_node.tag == _MERGE_TAG:
                merges.append((value_node, key_loc))
                continue
            key = self._key(key_node, path, depth, in_alias, key_loc)
            if key is None:
                continue
            if key in explicit:
                first = self.smap.span((*path, key))
                where = f" (first at line {first.key.line})" if first and first.key else ""
                self.errors.append(
                    Diagnostic(
                        "MLC008",
                        f"duplicate key '{key}'{where}",
                        key_loc,
                        "YAML keeps only the last; remove one",
                    )
                )
                continue
            explicit.add(key)
            child = (*path, key)
            self.smap.set(child, Span(key_loc, _loc(self.file, value_node.start_mark)))
            out[key] = self.node(value_node, child, depth + 1, in_alias, key_loc)
        for value_node, key_loc in merges:
            self._merge_into(out, explicit, value_node, path, depth, in_alias, key_loc)
        return out

    def _merge_into(
        self,
        out: dict[str, Any],
        explicit: set[str],
        value_node: Any,
        path: KeyPath,
        depth: int,
        in_alias: bool,
        key_loc: SourceLocation,
    ) -> None:
        """YAML's merge key (`<<: *base`): the mapping's own keys win, then earlier merges."""
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        if isinstance(value_node, yaml.SequenceNode):
            in_alias = self._count(value_node, depth + 1, in_alias, key_loc)
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self.errors.append(
                    Diagnostic(
                        "MLC002",
                        "a merge key '<<' takes a mapping or a list of mappings",
                        _loc(self.file, source.start_mark),
                        "write '<<: *anchor' with an anchor on a mapping",
                    )
                )
                continue
            # built aside so that its keys' spans do not overwrite the mapping's own
            sub_map = SourceMap()
            walker = _Walker(self.loader, self.file, sub_map, self.errors, self.budget)
            walker.seen = self.seen
            walker.alias_nodes = self.alias_nodes
            merged = walker.node(source, path, depth + 1, in_alias, key_loc)
            self.alias_nodes = walker.alias_nodes
            for key, value in merged.items():
                if key in out:
                    continue
                out[key] = value
                for sub in sub_map.under((*path, key)):
                    span = sub_map.span(sub)
                    if span is not None:
                        self.smap.set(sub, span)

    def _key(
        self, key_node: Any, path: KeyPath, depth: int, in_alias: bool, key_loc: SourceLocation
    ) -> str | None:
        if not isinstance(key_node, yaml.ScalarNode):
            self._count(key_node, depth + 1, in_alias, key_loc)
            kind = _KINDS.get(type(key_node).__name__, "values")
            self.errors.append(
                Diagnostic(
                    "MLC009",
                    f"keys are names, not {kind}",
                    key_loc,
                    "write a plain name before ':'",
                )
            )
            return None
        self._count(key_node, depth + 1, in_alias, key_loc)
        before = len(self.errors)
        key = self.scalar(key_node)
        if len(self.errors) > before:
            return None
        if not isinstance(key, str):
            self.errors.append(
                Diagnostic(
                    "MLC009",
                    f"keys are names, not {type(key).__name__} values ({key!r})",
                    key_loc,
                    f"quote it: '\"{key}\"'",
                )
            )
            return None
        return key


def _merge(
    base: dict[str, Any],
    base_map: SourceMap,
    over: dict[str, Any],
    over_map: SourceMap,
    path: KeyPath = (),
) -> None:
    """Deep-merge `over` into `base` in place: mappings merge, everything else is replaced.

    A mapping whose `kind` the overlay changes is replaced whole: its other keys belong to the
    old kind (a canary's `steps` mean nothing to `recreate`), so merging would only make errors.
    So is `training.model` when the overlay names another model (its params are the old one's).
    """
    for key, value in over.items():
        child = (*path, key)
        old = base.get(key)
        if (
            isinstance(value, dict)
            and isinstance(old, dict)
            and "kind" in value
            and old.get("kind", value["kind"]) != value["kind"]
        ):
            old = None
        if (
            child == ("training", "model")
            and isinstance(value, dict)
            and isinstance(old, dict)
            and "name" in value
            and old.get("name", value["name"]) != value["name"]
        ):
            old = None  # another model's params mean nothing to this one (a framework overlay)
        if isinstance(value, dict) and isinstance(old, dict):
            span = over_map.span(child)
            if span is not None and base_map.span(child) is None:
                base_map.set(child, span)
            _merge(base[key], base_map, value, over_map, child)
            continue
        base[key] = value
        base_map.drop_subtree(child)
        for sub in over_map.under(child):
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
    # `+group=option` appends the group to the spec's defaults, as in Hydra, when the spec's
    # folder has that group's folder; otherwise it is an ordinary `+key=value`.
    appended = [
        ov
        for ov in parsed
        if ov.kind == "add"
        and "." not in ov.key
        and isinstance(ov.value, str)
        and (root.parent / ov.key).is_dir()
    ]
    used_groups: set[str] = {ov.key for ov in appended}
    files: list[Path] = []
    data, smap = _compose(root, groups, used_groups, files, (), _Budget(), appended=appended)
    errors: list[Diagnostic] = []
    for ov in parsed:
        if ov.key in used_groups and (ov is groups.get(ov.key) or ov in appended):
            continue
        _apply_override(data, smap, ov, errors)
    if errors:
        raise DiagnosticError(errors)
    environment = environment_reads(data)
    data = _interpolate(data, smap)
    return LoadedSpec(data=data, source_map=smap, root=root, files=files, environment=environment)


def _compose(
    path: Path,
    groups: dict[str, _Override],
    used: set[str],
    files: list[Path],
    stack: tuple[Path, ...],
    budget: _Budget,
    included_at: SourceLocation | None = None,
    appended: Sequence[_Override] = (),
) -> tuple[dict[str, Any], SourceMap]:
    # realpath, not Path.resolve: that raises RuntimeError on a symlink loop, which the read
    # below reports as a diagnostic
    resolved = Path(os.path.realpath(path))
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
    budget.files += 1
    if budget.files > MAX_OVERLAYS:
        raise DiagnosticError(
            [
                _limit(
                    f"the spec reads more than {MAX_OVERLAYS} overlay files",
                    "MAX_OVERLAYS",
                    MAX_OVERLAYS,
                    included_at,
                    "overlays that list each other repeatedly multiply; list each once",
                )
            ]
        )
    files.append(path)
    data, smap = read_yaml(path, included_at, budget)
    shown = display_path(path)
    defaults = data.pop("defaults", None)
    if defaults is None and not appended:
        return data, smap
    if defaults is None:
        defaults = ["_self_"]
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
    groups_seen: set[str] = set()
    groups_repeated: set[str] = set()
    for i, entry in enumerate(defaults):
        span = smap.span(("defaults", i))
        where = span.value if span else None
        if entry == "_self_":
            # Hydra refuses a second `_self_` too; each one would merge the file's whole body again.
            if any(kind == "self" for kind, _, _ in entries):
                repeated = sum(1 for e in defaults if e == "_self_")
                if any(d.message.startswith("'_self_' appears") for d in errors):
                    continue
                errors.append(
                    Diagnostic(
                        "MLC010",
                        f"'_self_' appears {repeated} times in 'defaults'",
                        where,
                        "list '_self_' once: it marks where this file's own content is merged",
                    )
                )
                continue
            entries.append(("self", None, where))
        elif isinstance(entry, str) and entry:
            entries.append(("file", path.parent / entry, where))
        elif isinstance(entry, dict) and len(entry) == 1:
            ((group, option),) = entry.items()
            option_span = smap.span(("defaults", i, group))
            if option_span is not None:
                where = option_span.value
            # Hydra refuses a group listed twice: one group has one option.
            if isinstance(group, str) and group in groups_seen:
                if group not in groups_repeated:
                    groups_repeated.add(group)
                    times = sum(1 for e in defaults if isinstance(e, dict) and group in e)
                    errors.append(
                        Diagnostic(
                            "MLC010",
                            f"overlay group '{group}' appears {times} times in 'defaults'",
                            where,
                            f"list '{group}' once; pick another option with {group}=OPTION",
                        )
                    )
                continue
            if isinstance(group, str):
                groups_seen.add(group)
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
            try:
                found = candidate.exists()
            except OSError as exc:
                errors.append(
                    Diagnostic(
                        "MLC011",
                        f"overlay option '{option[:60]}' of group '{group[:60]}' is not a usable "
                        f"file name: {exc.strerror or exc}",
                        where,
                        "option names are short file names in the group's folder",
                    )
                )
                continue
            if not found:
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
    if not any(kind == "self" for kind, _, _ in entries):
        entries.append(("self", None, None))
    for ov in appended:
        option = str(ov.value)
        candidate = path.parent / ov.key / f"{option}.yaml"
        if candidate.is_file():
            entries.append(("file", candidate, ov.location))
            continue
        available = sorted(p.stem for p in (path.parent / ov.key).glob("*.yaml"))
        errors.append(
            Diagnostic(
                "MLC011",
                f"no option '{option}' in overlay group '{ov.key}'",
                ov.location,
                did_you_mean(option, available, "options")
                if available
                else f"create {display_path(candidate)}",
            )
        )
    if errors:
        raise DiagnosticError(errors)
    merged: dict[str, Any] = {}
    merged_map = SourceMap()
    merged_map.set((), Span(None, SourceLocation(shown, 1, 1)))
    for kind, overlay, where in entries:
        if kind == "self":
            _merge(merged, merged_map, data, smap)
            continue
        assert overlay is not None
        sub, sub_map = _compose(overlay, groups, used, files, (*stack, resolved), budget, where)
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


_ENV_READ = re.compile(r"\$\{\s*(?:oc\.env|env)\s*:\s*([^,}\s]*)")
_NODE_REF = re.compile(r"\$\{\s*(\.*[A-Za-z_][\w\-.\[\]]*)\s*\}")


def _ref_path(ref: str, at: KeyPath) -> KeyPath:
    """`${a.b[0]}` -> ("a", "b", 0); a relative `${.c}` resolves against the node's parent."""
    dots = len(ref) - len(ref.lstrip("."))
    base: KeyPath = at[: max(len(at) - dots, 0)] if dots else ()
    parts: list[str | int] = []
    for piece in re.split(r"\.|\[|\]", ref.lstrip(".")):
        if piece:
            parts.append(int(piece) if piece.isdigit() else piece)
    return (*base, *parts)


def environment_reads(data: dict[str, Any]) -> dict[KeyPath, tuple[str, ...]]:
    """Paths whose (unresolved) value reads the environment, directly or via another key."""
    raw: dict[KeyPath, str] = {}
    for path in _interpolated_paths(data):
        node: Any = data
        for part in path:
            node = node[part]
        raw[path] = str(node)
    found = {p: tuple(_ENV_READ.findall(v)) for p, v in raw.items() if _ENV_READ.search(v)}
    changed = bool(found)
    while changed:  # a copy of a copy of an environment value is one too
        changed = False
        for path, value in raw.items():
            names = set(found.get(path, ()))
            for ref in _NODE_REF.findall(value):
                target = _ref_path(ref, path)
                for src, src_names in found.items():
                    if src[: len(target)] == target or target[: len(src)] == src:
                        names.update(src_names)
            if names and tuple(sorted(names)) != tuple(sorted(found.get(path, ()))):
                found[path] = tuple(sorted(names))
                changed = True
    return found


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

    hint = "interpolations are ${other.key}, or ${oc.env:VAR[,default]} under security.secrets"
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
                    "interpolations are ${other.key}, or ${oc.env:VAR[,default]} under "
                    "security.secrets",
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
