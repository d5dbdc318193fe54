"""HCL text helpers: literal values for templates, and the layout `terraform fmt` leaves.

Templates write the structure; these helpers turn Python values into HCL literals and then align
`=` signs the way `terraform fmt` does, so emitted files pass `terraform fmt -check` unchanged.

>>> print(hcl_value({"a": "x", "b": 1}, 0))
{
  a = "x"
  b = 1
}
>>> print(format_hcl('x {\\n  a = 1\\n  bbb = 2\\n}\\n'), end="")
x {
  a   = 1
  bbb = 2
}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_ATTR = re.compile(
    r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_-]*|\"(?:[^\"\\]|\\.)*\") *= *(?P<rest>.*)$"
)


class Expr(str):
    """An HCL expression written as is (a reference such as `aws_s3_bucket.data.arn`)."""

    __slots__ = ()


class Template(str):
    """An HCL string template whose `${...}` interpolations are kept (`"${a.b.arn}/*"`)."""

    __slots__ = ()


def quote(text: str) -> str:
    """An HCL string literal; `${` and `%{` are escaped so text never becomes a template.

    >>> quote('a "b" ${c}')
    '"a \\\\"b\\\\" $${c}"'
    """
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("${", "$${")
        .replace("%{", "%%{")
    )
    return f'"{escaped}"'


def _key(key: str) -> str:
    return key if _IDENT.match(key) else quote(key)


def _scalar(value: Any) -> str | None:
    if isinstance(value, Expr):
        return str(value)
    if isinstance(value, Template):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value == int(value) else json.dumps(value)
    if isinstance(value, str):
        return quote(value)
    return None


def hcl_value(value: Any, indent: int = 0) -> str:
    """Render a Python value as an HCL literal whose inner lines start at `indent` spaces.

    Mappings keep their order (callers sort where order carries no meaning); lists of scalars
    stay on one line, other lists and every non-empty mapping span several lines.
    """
    scalar = _scalar(value)
    if scalar is not None:
        return scalar
    pad = " " * (indent + 2)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        body = "\n".join(
            f"{pad}{_key(str(k))} = {hcl_value(v, indent + 2)}" for k, v in value.items()
        )
        return "{\n" + body + "\n" + " " * indent + "}"
    if isinstance(value, Sequence):
        items = list(value)
        if not items:
            return "[]"
        flat = [_scalar(v) for v in items]
        if all(f is not None for f in flat):
            return "[" + ", ".join(str(f) for f in flat) + "]"
        body = "\n".join(f"{pad}{hcl_value(v, indent + 2)}," for v in items)
        return "[\n" + body + "\n" + " " * indent + "]"
    raise TypeError(f"no HCL literal for {type(value).__name__}")


def _depth_change(text: str) -> int:
    """Net brackets opened on a line, ignoring those inside string literals."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
    return depth


def format_hcl(text: str) -> str:
    """Lay out HCL as `terraform fmt` does: aligned `=` in runs of one-line attributes.

    A run is broken by any line that is not a one-line attribute: a blank line, a comment, a
    block header, a line that opens a multi-line value or one that closes it. Runs of blank
    lines shrink to one, trailing spaces go, and the text ends in exactly one newline.
    """
    lines = [line.rstrip() for line in text.strip("\n").split("\n")]
    compact: list[str] = []
    for line in lines:
        if line or (compact and compact[-1]):
            compact.append(line)
    out: list[str] = []
    run: list[tuple[str, str, str]] = []

    def flush() -> None:
        width = max((len(indent) + len(key) for indent, key, _ in run), default=0)
        for indent, key, rest in run:
            out.append(f"{indent}{key}{' ' * (width - len(indent) - len(key) + 1)}= {rest}")
        run.clear()

    for line in compact:
        match = _ATTR.match(line)
        if match and _depth_change(match["rest"]) == 0 and not line.lstrip().startswith("#"):
            run.append((match["indent"], match["key"], match["rest"]))
            continue
        flush()
        out.append(line)
    flush()
    return "\n".join(out) + "\n"
