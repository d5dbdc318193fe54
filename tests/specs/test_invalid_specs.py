"""The invalid-spec corpus: every file under tests/invalid/ pins one diagnostic and its place.

A case is `tests/invalid/<name>.yaml`, or `tests/invalid/<name>/mlc.yaml` when it needs overlays
beside it. Its leading comments say what must come out:

    # expect: MLC101 12:5              code and line:col in the case file
    # expect: MLC103 env/dev.yaml:3:14 ... or in an overlay (relative to the case's folder)
    # expect: MLC022 <override>:1:20   ... or on the command line
    # overrides: training.sed=3        command-line overrides passed to the compiler
    # hint: did you mean 'seed'?       text the diagnostic's hint must contain
    # message: duplicate key           text the diagnostic's message must contain

Files that cannot be committed (empty, binary, huge, missing, not UTF-8) are written to tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlc.compiler.api import check
from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, Severity
from mlc.compiler.load import MAX_SPEC_BYTES

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "invalid"
MLC = REPO / ".venv" / "bin" / "mlc"
_HEADER = re.compile(r"^#\s*(expect|overrides|hint|message):\s*(.*?)\s*$")
_ENV_VAR = re.compile(r"oc\.env:([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Case:
    name: str
    spec: Path
    code: str
    file: str
    """`<override>`, or the absolute path of the file the diagnostic must point into."""
    line: int
    col: int
    overrides: tuple[str, ...]
    hint: str
    message: str


def _parse(spec: Path, name: str) -> Case:
    headers: dict[str, str] = {}
    for line in spec.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        match = _HEADER.match(line)
        if match:
            headers[match.group(1)] = match.group(2)
    assert "expect" in headers, f"{spec}: no '# expect: CODE LINE:COL' header"
    code, where = headers["expect"].split()
    *file_part, line, col = where.split(":")
    if file_part == ["<override>"]:
        file = "<override>"
    elif file_part:
        file = str((spec.parent / ":".join(file_part)).resolve())
    else:
        file = str(spec.resolve())
    return Case(
        name,
        spec,
        code,
        file,
        int(line),
        int(col),
        tuple(headers.get("overrides", "").split()),
        headers.get("hint", ""),
        headers.get("message", ""),
    )


def _cases() -> list[Case]:
    found = [_parse(p, p.stem) for p in sorted(CORPUS.glob("*.yaml"))]
    found += [
        _parse(d / "mlc.yaml", d.name)
        for d in sorted(CORPUS.iterdir())
        if d.is_dir() and (d / "mlc.yaml").exists()
    ]
    return found


CASES = _cases()


def _where(d: Diagnostic) -> tuple[str, int, int] | None:
    if d.location is None:
        return None
    file = d.location.file
    shown = file if file.startswith("<") else str(Path(file).resolve())
    return shown, d.location.line, d.location.col


def _diagnostics(case: Case) -> list[Diagnostic]:
    try:
        result = check(case.spec, case.overrides)
    except DiagnosticError as exc:
        return list(exc.diagnostics)
    return [d for d in result.diagnostics if d.severity is Severity.ERROR]


@pytest.fixture(autouse=True)
def _unset_corpus_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Env vars the corpus reads through ${oc.env:...} must be unset for the cases to hold."""
    for case in CASES:
        for var in _ENV_VAR.findall(case.spec.read_text(encoding="utf-8")):
            monkeypatch.delenv(var, raising=False)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 45
    assert len({c.code for c in CASES}) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_spec(case: Case) -> None:
    diags = _diagnostics(case)
    assert diags, f"{case.name}: the spec was accepted"
    wanted = (case.file, case.line, case.col)
    matching = [d for d in diags if d.code == case.code and _where(d) == wanted]
    rendered = "\n".join(d.render() for d in diags)
    assert matching, (
        f"{case.name}: expected {case.code} at {case.file}:{case.line}:{case.col}, got:\n{rendered}"
    )
    found = matching[0]
    assert found.message, rendered
    if case.hint:
        assert case.hint in found.hint, f"hint {found.hint!r} lacks {case.hint!r}"
    if case.message:
        assert case.message in found.message, f"message {found.message!r} lacks {case.message!r}"


def test_every_spec_rule_has_a_case() -> None:
    """Each code that specs/ or the loader can raise for a spec has its own corpus file."""
    sources = [
        *(REPO / "specs").glob("*.py"),
        REPO / "compiler" / "load.py",
        REPO / "compiler" / "validate.py",
    ]
    codes = set()
    for path in sources:
        codes |= set(re.findall(r'"(MLC[0-3]\d\d)"', path.read_text(encoding="utf-8")))
    # MLC004 (too large) and MLC003 (binary, not UTF-8) are generated in tmp_path below;
    # MLC050 needs a missing Graphviz, not a spec.
    covered = {c.code for c in CASES} | {"MLC003", "MLC004"}
    assert codes - covered == set()


# -- files that are generated, not committed ---------------------------------------------------


def _only(path: Path) -> Diagnostic:
    with pytest.raises(DiagnosticError) as info:
        check(path)
    diags = list(info.value.diagnostics)
    assert len(diags) == 1, diags
    return diags[0]


def test_missing_file(tmp_path: Path) -> None:
    d = _only(tmp_path / "nope" / "mlc.yaml")
    assert d.code == "MLC001"
    assert "nope" in d.message and d.hint


def test_directory_instead_of_file(tmp_path: Path) -> None:
    d = _only(tmp_path)
    assert d.code == "MLC001"
    assert "directory" in d.message


@pytest.mark.parametrize("content", [b"", b"\n\n   \n"], ids=["empty", "blank"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_bytes(content)
    d = _only(spec)
    assert d.code == "MLC005"
    assert _where(d) == (str(spec.resolve()), 1, 1)


def test_binary_file(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_bytes(bytes(range(256)) * 8)
    d = _only(spec)
    assert d.code == "MLC003"
    assert _where(d) == (str(spec.resolve()), 1, 1)


def test_not_utf8(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    d = _only(spec)
    assert d.code == "MLC003"
    assert "UTF-8" in d.message


def test_huge_file(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    line = b"# " + b"x" * 1021 + b"\n"
    with spec.open("wb") as fh:
        fh.write(b"name: huge\n")
        for _ in range(MAX_SPEC_BYTES // len(line) + 2):
            fh.write(line)
    assert spec.stat().st_size > MAX_SPEC_BYTES
    d = _only(spec)
    assert d.code == "MLC004"
    assert str(MAX_SPEC_BYTES) in d.message


def test_deep_nesting_is_a_diagnostic(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_text("name: deep\ntags: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(DiagnosticError) as info:
        check(spec)
    assert {d.code for d in info.value.diagnostics} <= {"MLC002", "MLC105"}


def test_all_errors_in_one_run(tmp_path: Path) -> None:
    """Independent problems in different sections are all reported, not only the first."""
    text = (CORPUS / "unknown_key_section.yaml").read_text(encoding="utf-8")
    text = text.replace("name: churn\n", "name: Churn\n").replace("test_size: 0.25", "test_size: 2")
    spec = tmp_path / "mlc.yaml"
    spec.write_text(text)
    with pytest.raises(DiagnosticError) as info:
        check(spec)
    assert {"MLC101", "MLC106", "MLC107"} <= {d.code for d in info.value.diagnostics}


# -- the same corpus through the command line ---------------------------------------------------

CLI_CASES = [
    "yaml_tab_indent",
    "duplicate_key_nested",
    "unknown_key_source",
    "overlay_bad_value",
    "override_unknown_key",
    "interp_missing_env",
    "rule_canary_end_100",
    "target_unknown",
]


def _run_cli(args: list[str], cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLC_INVALID_")}
    full_env.update(env)
    return subprocess.run(
        [str(MLC), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("name", CLI_CASES)
def test_invalid_spec_cli(name: str) -> None:
    (case,) = [c for c in CASES if c.name == name]
    proc = _run_cli(["validate", str(case.spec.relative_to(REPO)), *case.overrides])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    shown = case.file if case.file == "<override>" else os.path.relpath(case.file, REPO)
    assert f"{shown}:{case.line}:{case.col}: error[{case.code}]: " in proc.stderr, out
    if case.hint:
        assert f"hint: {case.hint}" in proc.stderr


def test_cli_missing_file(tmp_path: Path) -> None:
    proc = _run_cli(["validate", str(tmp_path / "missing.yaml")])
    assert proc.returncode == 2
    assert "error[MLC001]: file not found" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_cli_binary_file(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_bytes(b"\x00\x01\x02name: x\n")
    proc = _run_cli(["validate", "mlc.yaml"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "mlc.yaml:1:1: error[MLC003]: " in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_cli_json_lists_every_field() -> None:
    (case,) = [c for c in CASES if c.name == "unknown_key_top"]
    proc = _run_cli(["validate", str(case.spec.relative_to(REPO)), "--format", "json"])
    assert proc.returncode == 2

    (item,) = [d for d in json.loads(proc.stdout) if d["code"] == "MLC101"]
    assert (item["line"], item["col"]) == (case.line, case.col)
    assert item["hint"] == "did you mean 'training'?"
    assert item["path"] == "trainig"


if __name__ == "__main__":  # pragma: no cover - a debugging aid: print every case's result
    for c in CASES:
        print(c.name, [d.render() for d in _diagnostics(c)], file=sys.stderr)
