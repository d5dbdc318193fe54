"""Fuzz figures for hostile specs (issue 13): mutate the shipped examples, validate each in its
own process, compile every spec that validates to every installed target, and count.

    python benchmarks/fuzz_specs.py --seed 13 --count 10000 --out fuzz-out --time-limit 3000

Each case is generated from `(seed, index)` alone, so a case reproduces by itself:
`--only 4711` (or `--only 3,17,4711`) reruns just those indices with the same bytes. The parent
imports mlc once, then forks one child per spec (`--workers` at a time): the child runs the real
`mlc validate --format json` entry point with stdout and stderr on files, and, when the spec
validates, `compile_spec` once per installed target into a temporary folder. The parent reaps it
with `os.wait4`, which gives that child's own peak RSS, and kills it past `--case-timeout`; the
child's address space is capped (`--mem-cap-mb`) so a bomb costs a measured failure, not the
machine. Figures (`summary.json`): cases, internal errors (exit 1, a traceback, an exception
other than `DiagnosticError`, a kill), validate runs over 2 s and over 500 MB, the fraction of
`mlc validate` diagnostics that carry `file:line:col`, and specs that validate but crash a
target. Every failing case is copied to `failures/<index>-<family>/` with its record.

The summary note MLC419 is not counted for locations: it is the one-line digest of MLC420/421
warnings that each carry their own location. A target refusing a valid spec with a located
`DiagnosticError` (k8s does not realise `platform: kserve`) is a refusal, counted apart, not a
failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {"credit": ROOT / "examples" / "credit", "diabetes": ROOT / "examples" / "diabetes"}
OVER_S = 2.0
OVER_MB = 500.0
SUMMARY_NOTE = "MLC419"
PASS_CRASH = "MLC600"
"""A pass that raised: the exception is caught and reported as this diagnostic, so it counts as
an internal error here, not as a diagnostic."""
MLC_DIRS = tuple(str(ROOT / d) + os.sep for d in ("compiler", "specs", "targets", "runtime"))

Files = dict[str, bytes | None]
"""Relative path -> content; None makes a folder at that path."""


@dataclass
class Case:
    index: int
    family: str
    example: str
    mutation: str
    files: Files = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# the shipped examples


def _example_texts() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, folder in EXAMPLES.items():
        texts = {"mlc.yaml": (folder / "mlc.yaml").read_text(encoding="utf-8")}
        for overlay in sorted((folder / "env").glob("*.yaml")) if (folder / "env").is_dir() else []:
            texts[f"env/{overlay.name}"] = overlay.read_text(encoding="utf-8")
        out[name] = texts
    return out


BASE = _example_texts()

KeyPath = tuple[str | int, ...]


def _paths(tree: Any, prefix: KeyPath = ()) -> list[KeyPath]:
    out = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out += _paths(value, (*prefix, i))
    return out


def _parent(tree: Any, path: KeyPath) -> Any:
    node = tree
    for part in path[:-1]:
        node = node[part]
    return node


def _dump(tree: Any) -> str:
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True, width=10**9)


_INLINE = re.compile(
    r"^(?P<lead>\s*(?:- )?)(?P<key>[A-Za-z_][\w-]*):[ \t]+(?P<value>[^#\s{\[|>&*!][^#]*?)\s*$"
)
"""A block-mapping line with an inline plain scalar: the place to put a hostile value."""


def _replace_scalar(rng: random.Random, text: str, make: Callable[[str], str]) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    spots = [i for i, line in enumerate(lines) if _INLINE.match(line.rstrip("\n"))]
    i = rng.choice(spots)
    m = _INLINE.match(lines[i].rstrip("\n"))
    assert m is not None
    value = make(m["value"])
    lines[i] = f"{m['lead']}{m['key']}: {value}\n"
    return "".join(lines), f"line {i + 1}: {m['key']}: {value[:80]!r}"


# ---------------------------------------------------------------------------------------------
# mutation families: each takes the rng and the example's texts, returns (files, description)

Mutated = tuple[Files, str]


def _enc(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


ODD_VALUES: list[Any] = [
    None,
    0,
    -1,
    1.5,
    "",
    "x",
    "${nope}",
    "${oc.env:MLC_FUZZ_UNSET}",
    "10m",
    [],
    [1, "a"],
    {},
    {"k": "v"},
    True,
    False,
    "vault:x",
    "a" * 300,
    [[[]]],
    {"a": {"b": None}},
]


def fam_flip(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Type flips and unknown keys at random key paths."""
    tree = yaml.safe_load(base["mlc.yaml"])
    notes = []
    for _ in range(rng.randint(1, 3)):
        paths = _paths(tree)[1:]
        path = rng.choice(paths)
        value = rng.choice(ODD_VALUES)
        parent = _parent(tree, path)
        if rng.random() < 0.25 and isinstance(parent, dict):
            key = "".join(
                rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(1, 10))
            )
            parent[key] = value
            notes.append(f"add {'.'.join(map(str, path[:-1]))}.{key}={value!r:.40}")
        else:
            parent[path[-1]] = value
            notes.append(f"set {'.'.join(map(str, path))}={value!r:.40}")
    return {"mlc.yaml": _enc(_dump(tree))}, "; ".join(notes)


def fam_delete(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Deleted keys and list items (required sections, references' targets)."""
    tree = yaml.safe_load(base["mlc.yaml"])
    notes = []
    for _ in range(rng.randint(1, 3)):
        paths = _paths(tree)[1:]
        path = rng.choice(paths)
        del _parent(tree, path)[path[-1]]
        notes.append("del " + ".".join(map(str, path)))
    return {"mlc.yaml": _enc(_dump(tree))}, "; ".join(notes)


def fam_duplicate(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Duplicated keys (a line or a whole block again) and duplicated list items."""
    text = base["mlc.yaml"]
    lines = text.splitlines(keepends=True)
    how = rng.choice(["line", "block", "item"])
    if how == "item":
        tree = yaml.safe_load(text)
        lists = [p for p in _paths(tree)[1:] if isinstance(_get(tree, p), list) and _get(tree, p)]
        path = rng.choice(lists)
        items = _get(tree, path)
        items.append(items[rng.randrange(len(items))])
        return {"mlc.yaml": _enc(_dump(tree))}, "dup item in " + ".".join(map(str, path))
    i = rng.randrange(len(lines))
    if how == "line":
        lines.insert(i, lines[i])
        return {"mlc.yaml": _enc("".join(lines))}, f"dup line {i + 1}"
    top = [j for j, line in enumerate(lines) if re.match(r"^[A-Za-z_]\w*:", line)]
    j = rng.choice(top)
    end = next((k for k in top if k > j), len(lines))
    block = lines[j:end]
    lines[end:end] = block
    return {"mlc.yaml": _enc("".join(lines))}, f"dup block at line {j + 1}"


def _get(tree: Any, path: KeyPath) -> Any:
    node = tree
    for part in path:
        node = node[part]
    return node


UNICODE = [
    "\u202eevil\u202c",  # RTL override
    "\u200b",  # zero-width space alone
    "na\u200bme",
    "\u200d\u2060\ufeff",
    "\u0645\u0631\u062d\u0628\u0627",  # Arabic (RTL)
    "\u05e9\u05dc\u05d5\u05dd",  # Hebrew
    "e\u0301\u0301\u0301",
    "\U0001f600\U0001f4a5",
    "\u4e2d\u6587",
    "\uffff\ufffe",
    "\u0085line",
    "\u2028\u2029",
]
ESCAPED = [
    r'"\ud800"',  # a lone surrogate, as YAML escape text
    r'"a\udfffb"',
    r'"\ud83d"',
    r'"a\0b"',  # NUL via escape
    r'"\x00"',
    r'"\x1b[31mred"',
    r'"\u202e"',
]


def fam_unicode(rng: random.Random, base: dict[str, str]) -> Mutated:
    """RTL, zero-width, combining, NUL and lone surrogates (escaped and as raw bytes)."""
    text = base["mlc.yaml"]
    how = rng.choice(["value", "escaped", "key", "raw_surrogate", "raw_nul", "value"])
    if how == "value":
        u = rng.choice(UNICODE)
        text, note = _replace_scalar(rng, text, lambda v: json.dumps(v + u, ensure_ascii=False))
        return {"mlc.yaml": _enc(text)}, f"unicode value {note}"
    if how == "escaped":
        e = rng.choice(ESCAPED)
        text, note = _replace_scalar(rng, text, lambda v: e)
        return {"mlc.yaml": _enc(text)}, f"escaped {note}"
    if how == "key":
        u = rng.choice(UNICODE)
        lines = text.splitlines(keepends=True)
        spots = [i for i, line in enumerate(lines) if _INLINE.match(line.rstrip("\n"))]
        i = rng.choice(spots)
        m = _INLINE.match(lines[i].rstrip("\n"))
        assert m is not None
        lines[i] = f"{m['lead']}{m['key']}{u}: {m['value']}\n"
        return {"mlc.yaml": _enc("".join(lines))}, f"unicode in key at line {i + 1}: {u!r}"
    raw = text.encode("utf-8")
    at = rng.randrange(len(raw))
    junk = b"\xed\xa0\x80" if how == "raw_surrogate" else b"\x00"
    return {"mlc.yaml": raw[:at] + junk + raw[at:]}, f"{how} at byte {at}"


def _numeric_paths(tree: Any) -> list[KeyPath]:
    out = []
    for p in _paths(tree)[1:]:
        v = _get(tree, p)
        if (isinstance(v, int | float) and not isinstance(v, bool)) or (
            isinstance(v, str) and re.fullmatch(r"\d+(\.\d+)?\s*[a-z]{1,3}", v)
        ):
            out.append(p)
    return out


HUGE = [
    10**400,
    -(10**400),
    2**63,
    2**64 + 1,
    -(2**63) - 1,
    1e308,
    -1e308,
    1.7976931348623157e308,
    5e-324,
]
NEGATIVE = [-1, -0.5, -(10**9), -1e-9, 0, -0.0]
HUGE_DURATIONS = ["99999999999999999999d", "1e400s", "-5m", "0s", "999999999w", "1e9h", "-1d"]


def fam_numbers(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Huge, negative and zero numbers and durations in numeric fields."""
    tree = yaml.safe_load(base["mlc.yaml"])
    notes = []
    for _ in range(rng.randint(1, 2)):
        path = rng.choice(_numeric_paths(tree))
        old = _get(tree, path)
        if isinstance(old, str):
            value: Any = rng.choice(HUGE_DURATIONS)
        else:
            value = rng.choice(HUGE + NEGATIVE)
        _parent(tree, path)[path[-1]] = value
        notes.append(f"{'.'.join(map(str, path))}={value!r:.30}")
    return {"mlc.yaml": _enc(_dump(tree))}, "; ".join(notes)


def fam_inf_nan(rng: random.Random, base: dict[str, str]) -> Mutated:
    """inf / -inf / nan in numeric fields and in durations, windows, budgets, retention."""
    tree = yaml.safe_load(base["mlc.yaml"])
    path = rng.choice(_numeric_paths(tree))
    old = _get(tree, path)
    if isinstance(old, str):
        unit = re.sub(r"^[\d.\s]+", "", old)
        value: Any = rng.choice([f"inf{unit}", f"nan{unit}", f"1e999{unit}", "inf", ".inf"])
    else:
        value = rng.choice([float("inf"), float("-inf"), float("nan")])
    _parent(tree, path)[path[-1]] = value
    return {"mlc.yaml": _enc(_dump(tree))}, f"{'.'.join(map(str, path))}={value!r}"


def fam_alias_bomb(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Billion laughs (lists and merge keys) and self-referencing aliases, at a real key."""
    text = base["mlc.yaml"]
    kind = rng.choice(["laughs", "laughs", "merge", "recursive"])
    width, depth = rng.randint(3, 10), rng.randint(3, 10)
    if kind == "recursive":
        bomb = "description: &r [*r]\n" if rng.random() < 0.5 else "tags: &r {a: *r}\n"
        note = "recursive alias"
    elif kind == "laughs":
        rows = ["x-bombs:", f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
        for d in range(1, depth + 1):
            rows.append(f"  l{d}: &l{d} [{', '.join([f'*l{d - 1}'] * width)}]")
        bomb = "\n".join(rows) + f"\ndescription: *l{depth}\n"
        note = f"laughs width {width} depth {depth} ({width**depth:.3g} leaves)"
    else:
        rows = ["x-bombs:", "  m0: &m0 {a0: 1}"]
        for d in range(1, depth + 1):
            keys = ", ".join(f"k{j}: *m{d - 1}" for j in range(width))
            rows.append(f"  m{d}: &m{d} {{<<: *m{d - 1}, {keys}}}")
        bomb = "\n".join(rows) + f"\ntags: *m{depth}\n"
        note = f"merge width {width} depth {depth}"
    lines = [
        line
        for line in text.splitlines(keepends=True)
        if not re.match(r"^(description|tags):", line)
    ]
    return {"mlc.yaml": _enc(bomb + "".join(lines))}, note


def fam_deep_nesting(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Flow and block nesting from tens to a hundred thousand levels deep."""
    text = base["mlc.yaml"]
    n = rng.choice([30, 100, 500, 1000, 5000, 20000, 100000])
    kind = rng.choice(["flow_list", "flow_map", "block"])
    if kind == "flow_list":
        value = "[" * n + "]" * n
    elif kind == "flow_map":
        value = "{a: " * n + "1" + "}" * n
    else:
        n = min(n, 400)
        value = "\n" + "".join("  " * (d + 1) + f"k{d}:\n" for d in range(n)) + "  " * (n + 1) + "x"
    key = rng.choice(["tags", "description", "training", "data"])
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith(f"{key}:")]
    if key in ("training", "data"):
        # a block section: drop its body too, so the nested value stands in for it
        lines = _drop_section(text, key)
    return {"mlc.yaml": _enc(f"{key}: {value}\n" + "".join(lines))}, f"{kind} depth {n} at {key}"


def _drop_section(text: str, key: str) -> list[str]:
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith(f"{key}:"):
            skipping = True
            continue
        if skipping and (line.startswith((" ", "\t")) or not line.strip()):
            continue
        skipping = False
        out.append(line)
    return out


TAGS = [
    "!!float abc",
    "!!int 0xZZ",
    "!!int 12",
    "!!float 1.5",
    "!!str 12",
    "!!binary aGVsbG8=",
    "!!binary ***",
    "!!timestamp 2001-99-99",
    "!!timestamp 2001-12-14",
    "!!bool maybe",
    "!!null x",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!pairs [a: 1, a: 2]",
    "!!map [1, 2]",
    "!!seq {a: 1}",
    '!!python/object/apply:os.system ["true"]',
    "!!python/name:os.system",
    "!custom value",
    "!<tag:yaml.org,2002:str> x",
    "!<tag:evil.example,2000:x> y",
    "!!merge x",
    "!!value x",
]


def fam_tags(rng: random.Random, base: dict[str, str]) -> Mutated:
    """YAML tags on values: the safe set, bad contents for them, and unsafe or unknown tags."""
    text = base["mlc.yaml"]
    tag = rng.choice(TAGS)
    if rng.random() < 0.1:
        text = "%TAG !e! tag:evil.example,2000:\n---\n" + text
        text, note = _replace_scalar(rng, text, lambda v: f"!e!thing {v}")
        return {"mlc.yaml": _enc(text)}, f"%TAG directive {note}"
    text, note = _replace_scalar(rng, text, lambda v: tag)
    return {"mlc.yaml": _enc(text)}, f"tag {note}"


def fam_bom(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Byte-order marks: UTF-8 in front or inside, UTF-16/32 encodings, a BOM alone."""
    text = base["mlc.yaml"]
    how = rng.choice(
        ["utf8", "utf8_twice", "inside", "utf16le", "utf16be", "utf32", "utf16_nobom", "alone"]
    )
    if how == "utf8":
        data = b"\xef\xbb\xbf" + text.encode()
    elif how == "utf8_twice":
        data = b"\xef\xbb\xbf\xef\xbb\xbf" + text.encode()
    elif how == "inside":
        at = rng.randrange(len(text))
        data = (text[:at] + "\ufeff" + text[at:]).encode()
    elif how == "utf16le":
        data = b"\xff\xfe" + text.encode("utf-16-le")
    elif how == "utf16be":
        data = b"\xfe\xff" + text.encode("utf-16-be")
    elif how == "utf32":
        data = text.encode("utf-32")
    elif how == "utf16_nobom":
        data = text.encode("utf-16-le")
    else:
        data = b"\xef\xbb\xbf"
    return {"mlc.yaml": data}, how


def fam_binary(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Random bytes: a whole file, a splice into the spec, a gzip of it, high control bytes."""
    text = base["mlc.yaml"].encode()
    how = rng.choice(["whole", "splice", "gzip", "control", "truncate_mid_char"])
    if how == "whole":
        data = rng.randbytes(rng.choice([1, 16, 512, 4096, 65536]))
    elif how == "splice":
        at = rng.randrange(len(text))
        data = text[:at] + rng.randbytes(rng.randint(1, 64)) + text[at:]
    elif how == "gzip":
        import gzip

        data = gzip.compress(text, mtime=0)
    elif how == "control":
        at = rng.randrange(len(text))
        data = (
            text[:at]
            + bytes([rng.choice([1, 7, 8, 0x0B, 0x0C, 0x1B, 0x7F, 0x80, 0x9F])])
            + text[at:]
        )
    else:
        data = "description: caf\u00e9\n".encode()[:-2] + b"\n" + text
    return {"mlc.yaml": data}, f"{how} ({len(data)} bytes)"


def fam_whitespace(rng: random.Random, base: dict[str, str]) -> Mutated:
    """CRLF, lone CR, tabs in indentation, trailing spaces, no final newline."""
    text = base["mlc.yaml"]
    how = rng.choice(["crlf", "cr", "tabs", "tab_one", "trailing", "no_newline", "mixed"])
    if how == "crlf":
        text = text.replace("\n", "\r\n")
    elif how == "cr":
        text = text.replace("\n", "\r")
    elif how == "tabs":
        text = re.sub(r"(?m)^(  )+", lambda m: "\t" * (len(m.group(0)) // 2), text)
    elif how == "tab_one":
        lines = text.splitlines(keepends=True)
        spots = [i for i, line in enumerate(lines) if line.startswith("  ")]
        i = rng.choice(spots)
        lines[i] = "\t" + lines[i][2:]
        text = "".join(lines)
        how += f" line {i + 1}"
    elif how == "trailing":
        text = text.replace("\n", " \t \n")
    elif how == "no_newline":
        text = text.rstrip("\n")
    else:
        text = "".join(line + rng.choice(["\n", "\r\n", "\r"]) for line in text.splitlines())
    return {"mlc.yaml": _enc(text)}, how


def fam_long_lines(rng: random.Random, base: dict[str, str]) -> Mutated:
    """A very long scalar, key or comment on one line (up to a few MB)."""
    text = base["mlc.yaml"]
    n = rng.choice([10_000, 100_000, 1_000_000, 3_000_000])
    how = rng.choice(["value", "key", "comment", "list"])
    if how == "value":
        text, note = _replace_scalar(rng, text, lambda v: "x" * n)
    elif how == "key":
        text, note = text + "k" * n + ": 1\n", "key"
    elif how == "comment":
        text, note = "#" + "c" * n + "\n" + text, "comment"
    else:
        text, note = text.replace("owners: [", "owners: [" + "a@b.c, " * (n // 7), 1), "owners"
    return {"mlc.yaml": _enc(text)}, f"{how} of {n} chars: {note[:60]}"


def fam_empty(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Empty and next-to-empty documents: nothing, whitespace, comments, markers, scalars."""
    choices = [
        b"",
        b"\n",
        b"   \n\t\n",
        b"# only a comment\n",
        b"---\n",
        b"...\n",
        b"--- \n...\n",
        b"~\n",
        b"null\n",
        b"[]\n",
        b"{}\n",
        b"0\n",
        b"'text'\n",
        b"- a\n- b\n",
        b"---\n---\n",
        b"--- {}\n--- {}\n",
        b"\xef\xbb\xbf",
        b"\x00",
        b"apiVersion: mlc/v1\n",
    ]
    data = rng.choice(choices)
    return {"mlc.yaml": data}, f"{data[:30]!r}"


def fam_huge_file(rng: random.Random, base: dict[str, str]) -> Mutated:
    """50 MB files: a comment, one scalar, many keys, binary."""
    text = base["mlc.yaml"].encode()
    size = 50 * 1024 * 1024
    how = rng.choice(["comment", "scalar", "keys", "binary"])
    if how == "comment":
        data = text + b"#" + b"c" * size + b"\n"
    elif how == "scalar":
        data = b"description: " + b"x" * size + b"\n" + text
    elif how == "keys":
        row = b"  k%07d: v\n"
        data = text + b"x-many:\n" + b"".join(row % i for i in range(size // len(row % 0)))
    else:
        data = rng.randbytes(size)
    return {"mlc.yaml": data}, f"{how} ({len(data) / 2**20:.0f} MB)"


def fam_defaults(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Long `defaults:` lists (the quadratic composition of the issue), bad and odd entries."""
    text = base["mlc.yaml"]
    n = rng.choice([10, 100, 1000, 4000])
    entry = rng.choice(
        ["- _self_", "- env: dev", "- env: prod", "- env: missing", "- 5", "- {}", "- env: ../../x"]
    )
    block = "defaults:\n  - _self_\n" + "".join(f"  {entry}\n" for _ in range(n))
    lines = _drop_section(text, "defaults")
    return {"mlc.yaml": _enc(block + "".join(lines))}, f"defaults of {n} x {entry!r}"


def fam_overlay(rng: random.Random, base: dict[str, str]) -> Mutated:
    """The env overlay (env/dev.yaml) damaged instead of the spec, or made a folder, or gone."""
    text = base["env/dev.yaml"]
    how = rng.choice(["flip", "garbage", "folder", "missing", "empty", "inf", "tag", "list"])
    if how == "folder":
        return {"env/dev.yaml": None}, "overlay is a folder"
    if how == "missing":
        return {"env/dev.yaml": b"__delete__"}, "overlay missing"
    if how == "empty":
        return {"env/dev.yaml": b""}, "overlay empty"
    if how == "list":
        return {"env/dev.yaml": b"- tuning\n- 3\n"}, "overlay is a list"
    if how == "inf":
        return {
            "env/dev.yaml": text.replace("trials: 6", "trials: .inf").encode()
        }, "overlay trials .inf"
    if how == "tag":
        return {
            "env/dev.yaml": text.replace("trials: 6", "trials: !!int 0xZZ").encode()
        }, "overlay tag"
    if how == "garbage":
        at = rng.randrange(len(text))
        return {
            "env/dev.yaml": _enc(text[:at] + rng.choice(GARBAGE) + text[at:])
        }, f"garbage at {at}"
    tree = yaml.safe_load(text)
    path = rng.choice(_paths(tree)[1:])
    value = rng.choice(ODD_VALUES)
    _parent(tree, path)[path[-1]] = value
    return {"env/dev.yaml": _enc(_dump(tree))}, f"overlay {'.'.join(map(str, path))}={value!r:.30}"


GARBAGE = [
    "\t",
    "\x00",
    ":",
    "- ",
    "{",
    "]",
    "'",
    '"',
    "&a",
    "*a",
    "!!binary",
    "%",
    "@",
    "\n  ",
    "---\n",
    "? ",
    "\ufeff",
    "\x85",
    "#",
    "`",
    "|",
    ">",
    "<<: *x\n",
]


def fam_text(rng: random.Random, base: dict[str, str]) -> Mutated:
    """Truncation, garbage characters, dropped lines (what a bad merge or editor leaves)."""
    text = base["mlc.yaml"]
    notes = []
    for _ in range(rng.randint(1, 3)):
        how = rng.choice(["truncate", "garbage", "garbage", "drop_line"])
        if how == "truncate":
            at = rng.randrange(len(text) + 1)
            text = text[:at]
        elif how == "garbage":
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(GARBAGE) + text[at:]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                at = rng.randrange(len(lines))
                del lines[at]
                text = "".join(lines)
            else:
                at = 0
        notes.append(f"{how}@{at}")
    return {"mlc.yaml": _enc(text)}, " ".join(notes)


@dataclass(frozen=True)
class Family:
    make: Callable[[random.Random, dict[str, str]], Mutated]
    depends_on: str
    """The issue-13 fix this family needs to pass ("" when nothing: it must pass today)."""
    examples: tuple[str, ...] = ("credit", "diabetes")


FAMILIES: dict[str, Family] = {
    "flip": Family(fam_flip, ""),
    "delete": Family(fam_delete, ""),
    "duplicate": Family(fam_duplicate, ""),
    "text": Family(fam_text, ""),
    "unicode": Family(fam_unicode, ""),
    "whitespace": Family(fam_whitespace, ""),
    "bom": Family(fam_bom, ""),
    "binary": Family(fam_binary, ""),
    "empty": Family(fam_empty, ""),
    "long_lines": Family(fam_long_lines, ""),
    "numbers": Family(fam_numbers, "W2-B finite numbers / bounds"),
    "inf_nan": Family(fam_inf_nan, "W2-B finite numbers / bounds"),
    "alias_bomb": Family(fam_alias_bomb, "W2-A bounded loader (aliases)"),
    "deep_nesting": Family(fam_deep_nesting, "W2-A bounded loader (depth)"),
    "tags": Family(fam_tags, "W2-A bounded loader (tags)"),
    "defaults": Family(fam_defaults, "W2-A bounded loader (linear defaults)"),
    "overlay": Family(fam_overlay, "W2-A overlay errors located", ("credit",)),
    "huge_file": Family(fam_huge_file, "W2-A bounded loader (size)"),
}
HUGE_EVERY = 2000
"""One case in this many is a 50 MB file ("a few" in 10,000); never drawn otherwise."""


def make_case(seed: int, index: int, families: Iterable[str] | None = None) -> Case:
    """The case `index` of run `seed`: the same bytes every time, independent of other cases."""
    names = [f for f in (families or FAMILIES) if f != "huge_file"]
    rng = random.Random(f"mlc-fuzz:{seed}:{index}")
    if (families is None or "huge_file" in families) and index % HUGE_EVERY == HUGE_EVERY - 1:
        family = "huge_file"
    else:
        family = rng.choice(names) if names else "huge_file"
    fam = FAMILIES[family]
    example = rng.choice(fam.examples)
    files, note = fam.make(rng, BASE[example])
    return Case(index, family, example, note, files)


# ---------------------------------------------------------------------------------------------
# running a case


def _materialise(case: Case, folder: Path) -> Path:
    src = EXAMPLES[case.example]
    folder.mkdir(parents=True)
    (folder / "data").symlink_to(src / "data", target_is_directory=True)
    for rel, text in BASE[case.example].items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    for rel, data in case.files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            path.unlink(missing_ok=True)
            path.mkdir()
        elif data == b"__delete__":
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)
    return folder / "mlc.yaml"


def _crash_site(exc: BaseException) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f.filename.startswith(MLC_DIRS)]
    site = ours[-1] if ours else (frames[-1] if frames else None)
    return {
        "exception": f"{type(exc).__name__}: {str(exc)[:300]}",
        "site": f"{os.path.relpath(site.filename, ROOT)}:{site.lineno} ({site.name})"
        if site
        else "",
        "innermost": f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "",
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }


def _located(diags: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    counted = [d for d in diags if d.get("code") != SUMMARY_NOTE]
    located = [d for d in counted if d.get("file") and d.get("line") and d.get("col")]
    missing = [
        f"{d.get('code')}: {str(d.get('message'))[:120]}" for d in counted if d not in located
    ]
    return len(counted), len(located), missing


def _child(spec: Path, folder: Path, targets: list[str], mem_cap: int) -> dict[str, Any]:
    """In the forked child: `mlc validate --format json`, then compile every target if ok."""
    if mem_cap:
        resource.setrlimit(resource.RLIMIT_AS, (mem_cap, mem_cap))
    out_fd = os.open(folder / "stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err_fd = os.open(folder / "stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.chdir(folder)
    # main() skips the interpreter's teardown (os._exit) once a heavy library is loaded: this
    # child still has its result to write
    os.environ["MLC_FULL_EXIT"] = "1"
    from mlc.compiler import cli

    rec: dict[str, Any] = {}
    sys.argv = ["mlc", "validate", str(spec), "--format", "json"]
    t0 = time.perf_counter()
    try:
        cli.main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code if exc.code is not None else 0
    except BaseException as exc:
        code = "escaped"
        rec["crash"] = _crash_site(exc)
    rec["validate_s"] = time.perf_counter() - t0
    sys.stdout.flush()
    sys.stderr.flush()
    stdout = (folder / "stdout").read_text(encoding="utf-8", errors="replace")
    stderr = (folder / "stderr").read_text(encoding="utf-8", errors="replace")
    rec["exit"] = code
    rec["stderr"] = stderr[-2000:]
    try:
        diags = json.loads(stdout) if stdout.strip() else []
    except json.JSONDecodeError:
        diags = []
        rec["bad_json"] = stdout[-500:]
    rec["codes"] = sorted({str(d.get("code")) for d in diags if d.get("severity") == "error"})
    total, located, missing = _located(diags)
    if code == 2 and not diags:
        # exit 2 with a plain message (ProjectError, usage): a diagnostic without a place
        total, missing = total + 1, [f"(no diagnostic) {stderr.strip()[:200]}"]
    rec["diags"], rec["located"], rec["unlocated"] = total, located, missing
    internal = (
        code not in (0, 2)
        or "Traceback" in stdout + stderr
        or "internal error" in stderr
        or any(d.get("code") == PASS_CRASH for d in diags)
    )
    rec["internal"] = bool(internal)
    crashed = [d for d in diags if d.get("code") == PASS_CRASH]
    if crashed and "crash" not in rec:
        rec["crash"] = {"exception": str(crashed[0].get("message"))[:300], "site": "pass"}
    if internal and "crash" not in rec:
        rec["crash"] = _library_crash(spec)
    if code == 0:
        rec["compile"] = _compile_all(spec, folder, targets)
    return rec


def _library_crash(spec: Path) -> dict[str, Any]:
    """The CLI said 'internal error' without a traceback: find where, through the library."""
    from mlc.compiler.api import check
    from mlc.compiler.diagnostics import DiagnosticError

    try:
        check(spec)
    except DiagnosticError:
        return {"exception": "not reproduced by check() (DiagnosticError)", "site": "compiler/cli"}
    except BaseException as exc:
        return _crash_site(exc)
    return {"exception": "not reproduced by check() (ok)", "site": "compiler/cli"}


def _compile_all(spec: Path, folder: Path, targets: list[str]) -> dict[str, Any]:
    from mlc.compiler.api import compile_spec
    from mlc.compiler.diagnostics import DiagnosticError

    out: dict[str, Any] = {}
    for name in targets:
        t0 = time.perf_counter()
        dest = folder / "out" / name
        try:
            compile_spec(spec, [name], dest)
            out[name] = {"outcome": "ok"}
        except DiagnosticError as exc:
            diags = [d.to_json() for d in exc.diagnostics]
            total, located, missing = _located(diags)
            errors = sorted({d.code for d in exc.diagnostics if d.severity.value == "error"})
            out[name] = {
                "outcome": "refused",
                "codes": errors,
                "diags": total,
                "located": located,
                "unlocated": missing,
            }
            crashed = [d for d in exc.diagnostics if d.code == PASS_CRASH]
            if crashed:
                message = crashed[0].message
                out[name].update(outcome="internal", crash={"exception": message, "site": "pass"})
        except BaseException as exc:
            out[name] = {"outcome": "internal", "crash": _crash_site(exc)}
        out[name]["s"] = round(time.perf_counter() - t0, 4)
        shutil.rmtree(dest, ignore_errors=True)
    return out


def _warm(targets: list[str], work: Path) -> None:
    """Import what every child needs once, so each fork starts warm (and compiles the same)."""
    from mlc.compiler import cli
    from mlc.compiler.api import compile_spec
    from mlc.compiler.diagnostics import DiagnosticError

    cli.load_commands(("mlc.compiler.cli.core",))
    with tempfile.TemporaryDirectory() as tmp:
        for name in targets:
            for example in EXAMPLES.values():
                with contextlib.suppress(DiagnosticError):
                    compile_spec(example / "mlc.yaml", [name], Path(tmp) / name)


@dataclass
class Running:
    case: Case
    pid: int
    folder: Path
    started: float


def run_fuzz(
    seed: int,
    count: int,
    out: Path,
    workers: int = 2,
    time_limit: float = 3600.0,
    case_timeout: float = 60.0,
    mem_cap_mb: int = 2048,
    families: list[str] | None = None,
    only: list[int] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the cases, write `summary.json`, `cases.jsonl` and `failures/` under `out`."""
    from mlc.compiler.registry import default_registry

    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    targets = sorted(t.name for t in default_registry().all())
    out.mkdir(parents=True, exist_ok=True)
    failures = out / "failures"
    shutil.rmtree(failures, ignore_errors=True)
    # cases live under `out` (a test's tmp_path) and go as soon as they are reaped
    work = Path(tempfile.mkdtemp(prefix="work-", dir=out))
    _warm(targets, work)
    indices = only if only else list(range(count))
    deadline = time.monotonic() + time_limit
    mem_cap = mem_cap_mb * 1024 * 1024
    records: list[dict[str, Any]] = []
    running: dict[int, Running] = {}
    queue = iter(indices)
    stopped_early = False
    started_at = time.time()
    cases_log = (out / "cases.jsonl").open("w", encoding="utf-8")

    def launch(index: int) -> None:
        case = make_case(seed, index, families)
        folder = work / f"case-{index}"
        spec = _materialise(case, folder)
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                rec = _child(spec, folder, targets, mem_cap)
                (folder / "result.json").write_text(json.dumps(rec), encoding="utf-8")
            except BaseException:
                code = 70
            os._exit(code)
        running[pid] = Running(case, pid, folder, time.monotonic())

    def reap(pid: int, status: int, usage: Any, killed: str = "") -> None:
        job = running.pop(pid)
        rec = {
            "index": job.case.index,
            "family": job.case.family,
            "example": job.case.example,
            "mutation": job.case.mutation,
            "wall_s": round(time.monotonic() - job.started, 4),
            "rss_mb": round(usage.ru_maxrss / 1024, 1),
        }
        result = job.folder / "result.json"
        if killed:
            rec.update(internal=True, killed=killed, diags=0, located=0, unlocated=[])
        elif result.exists():
            rec.update(json.loads(result.read_text(encoding="utf-8")))
        else:
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            rec.update(
                internal=True,
                killed=f"child died (status {status}, signal {sig})",
                diags=0,
                located=0,
                unlocated=[],
            )
            rec["stderr"] = _tail(job.folder / "stderr")
        rec["failed"] = _failed(rec)
        records.append(rec)
        cases_log.write(json.dumps(rec, sort_keys=True) + "\n")
        if rec["failed"]:
            _keep_failure(job, rec, failures, seed)
        shutil.rmtree(job.folder, ignore_errors=True)
        if progress and len(records) % 100 == 0:
            print(
                f"{len(records)} cases, {sum(bool(r['failed']) for r in records)} failing",
                file=sys.stderr,
            )

    try:
        while True:
            while len(running) < workers and not stopped_early:
                if time.monotonic() > deadline:
                    stopped_early = True
                    break
                index = next(queue, None)
                if index is None:
                    break
                launch(index)
            if not running:
                break
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid:
                reap(pid, status, usage)
                continue
            now = time.monotonic()
            for job in list(running.values()):
                if now - job.started > case_timeout:
                    os.kill(job.pid, signal.SIGKILL)
                    _, status, usage = os.wait4(job.pid, 0)
                    reap(job.pid, status, usage, killed=f"timeout after {case_timeout:.0f} s")
            time.sleep(0.005)
    finally:
        for job in list(running.values()):
            os.kill(job.pid, signal.SIGKILL)
            os.wait4(job.pid, 0)
        cases_log.close()
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(records, targets)
    summary.update(
        seed=seed,
        requested=len(indices),
        stopped_early=stopped_early,
        workers=workers,
        wall_s=round(time.time() - started_at, 1),
        case_timeout_s=case_timeout,
        mem_cap_mb=mem_cap_mb,
        families=families or sorted(FAMILIES),
        machine=_machine(),
    )
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return summary


def _tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-2000:]
    except OSError:
        return ""


def _failed(rec: dict[str, Any]) -> list[str]:
    why = []
    if rec.get("internal"):
        why.append("internal")
    if rec.get("validate_s", rec["wall_s"]) > OVER_S:
        why.append("over_2s")
    if rec["rss_mb"] > OVER_MB:
        why.append("over_500mb")
    if rec.get("unlocated"):
        why.append("unlocated")
    for name, res in (rec.get("compile") or {}).items():
        if res["outcome"] == "internal":
            why.append(f"compile_crash:{name}")
        elif res.get("unlocated"):
            why.append(f"compile_unlocated:{name}")
    return why


def _keep_failure(job: Running, rec: dict[str, Any], failures: Path, seed: int) -> None:
    dest = failures / f"{job.case.index:05d}-{job.case.family}"
    dest.mkdir(parents=True, exist_ok=True)
    for rel, data in job.case.files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            target.mkdir(exist_ok=True)
        elif len(data) <= 1024 * 1024:
            target.write_bytes(data)
        else:
            target.with_name(target.name + ".TOO-BIG").write_text(
                f"{len(data)} bytes; regenerate with --seed {seed} --only {job.case.index}\n",
                encoding="utf-8",
            )
    (dest / "record.json").write_text(
        json.dumps(rec, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summarise(records: list[dict[str, Any]], targets: list[str]) -> dict[str, Any]:
    """The figures of issue 13 over finished cases."""
    internal = [r for r in records if r.get("internal")]
    validated = [r for r in records if r.get("exit") == 0]
    diags = sum(r.get("diags", 0) for r in records)
    located = sum(r.get("located", 0) for r in records)
    compile_outcomes: dict[str, Counter[str]] = {t: Counter() for t in targets}
    refusal_codes: Counter[str] = Counter()
    compile_crashes = []
    compile_diags = compile_located = 0
    for r in validated:
        for name, res in (r.get("compile") or {}).items():
            compile_outcomes[name][res["outcome"]] += 1
            refusal_codes.update(f"{name}:{c}" for c in res.get("codes", []))
            compile_diags += res.get("diags", 0)
            compile_located += res.get("located", 0)
            if res["outcome"] == "internal":
                compile_crashes.append(
                    {
                        "index": r["index"],
                        "family": r["family"],
                        "target": name,
                        **{k: res["crash"][k] for k in ("exception", "site")},
                    }
                )
    by_family: dict[str, dict[str, int]] = {}
    for r in records:
        fam = by_family.setdefault(r["family"], Counter())
        fam["cases"] += 1
        fam["validated"] += r.get("exit") == 0
        for why in r["failed"]:
            fam[why.split(":")[0]] += 1
    unlocated: Counter[str] = Counter(
        m.split(":")[0] for r in records for m in r.get("unlocated", [])
    )
    sites: Counter[str] = Counter(
        f"{(r.get('crash') or {}).get('site') or r.get('killed', '?')} "
        f"[{(r.get('crash') or {}).get('exception', '').split(':')[0]}]"
        for r in internal
    )
    walls = [r.get("validate_s", r["wall_s"]) for r in records]
    return {
        "cases": len(records),
        "internal_errors": len(internal),
        "internal_sites": dict(sites.most_common()),
        "killed": sum(1 for r in records if r.get("killed")),
        "over_2s": sum(1 for r in records if "over_2s" in r["failed"]),
        "over_500mb": sum(1 for r in records if "over_500mb" in r["failed"]),
        "diagnostics": diags,
        "diagnostics_located": located,
        "located_fraction": round(located / diags, 6) if diags else 1.0,
        "unlocated_codes": dict(unlocated.most_common()),
        "validated": len(validated),
        "validated_but_compile_crash": len({c["index"] for c in compile_crashes}),
        "compile_crashes": compile_crashes[:200],
        "compile_outcomes": {t: dict(c) for t, c in compile_outcomes.items()},
        "compile_refusal_codes": dict(refusal_codes.most_common()),
        "compile_diagnostics_located": f"{compile_located}/{compile_diags}",
        "validate_s_p50": round(_quantile(walls, 0.5), 4),
        "validate_s_p99": round(_quantile(walls, 0.99), 4),
        "validate_s_max": round(max(walls, default=0.0), 4),
        "rss_mb_max": max((r["rss_mb"] for r in records), default=0.0),
        "by_family": {k: dict(v) for k, v in sorted(by_family.items())},
        "failing_cases": [r["index"] for r in records if r["failed"]][:1000],
    }


def _machine() -> dict[str, Any]:
    mem = ""
    with contextlib.suppress(OSError, StopIteration):
        mem = next(
            line
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    return {
        "nproc": os.cpu_count(),
        "memory": " ".join(mem.split()[1:]),
        "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=Path("fuzz-out"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--time-limit", type=float, default=3600.0, help="stop starting cases after this (s)"
    )
    ap.add_argument("--case-timeout", type=float, default=60.0, help="kill a case after this (s)")
    ap.add_argument("--mem-cap-mb", type=int, default=2048, help="address-space cap of each case")
    ap.add_argument(
        "--families", default="", help="comma-separated subset of: " + ", ".join(FAMILIES)
    )
    ap.add_argument("--only", default="", help="comma-separated case indices to rerun")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    families = [f for f in args.families.split(",") if f] or None
    unknown = sorted(set(families or ()) - set(FAMILIES))
    if unknown:
        ap.error(f"unknown families: {', '.join(unknown)}")
    only = [int(i) for i in args.only.split(",") if i] or None
    # a TERM (a CI timeout, a `kill`) still reaps the running cases through run_fuzz's finally
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    summary = run_fuzz(
        args.seed,
        args.count,
        args.out,
        args.workers,
        args.time_limit,
        args.case_timeout,
        args.mem_cap_mb,
        families,
        only,
        progress=not args.quiet,
    )
    brief = {
        k: summary[k]
        for k in (
            "cases",
            "internal_errors",
            "over_2s",
            "over_500mb",
            "located_fraction",
            "validated",
            "validated_but_compile_crash",
            "stopped_early",
        )
    }
    print(json.dumps(brief, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
