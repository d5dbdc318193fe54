"""The `mlc` command line, run as a real process: exit codes, outputs, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
MLC = REPO / ".venv" / "bin" / "mlc"
CREDIT = REPO / "examples" / "credit" / "mlc.yaml"
BAD = REPO / "tests" / "invalid" / "unknown_key_top.yaml"
HEAVY = ("torch", "pyspark", "kfp", "mlflow", "lightning", "optuna", "sklearn", "pandas")


def mlc(*args: str | Path, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [str(MLC), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=180,
        check=False,
    )


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr


def test_validate_ok() -> None:
    proc = mlc("validate", CREDIT)
    assert proc.returncode == 0, proc.stderr
    assert "ok (" in proc.stdout and "steps" in proc.stdout


def test_validate_with_overrides() -> None:
    assert mlc("validate", CREDIT, "env=prod", "training.seed=1").returncode == 0
    proc = mlc("validate", CREDIT, "training.task=regression")
    assert proc.returncode == 2
    assert "error[MLC341]" in proc.stderr
    _no_traceback(proc)


def test_validate_error_text() -> None:
    proc = mlc("validate", BAD.relative_to(REPO))
    assert proc.returncode == 2
    assert (
        "tests/invalid/unknown_key_top.yaml:30:1: error[MLC101]: unknown key 'trainig'"
        in proc.stderr
    )
    assert "hint: did you mean 'training'?" in proc.stderr
    assert proc.stdout == ""
    _no_traceback(proc)


def test_validate_json_format() -> None:
    proc = mlc("validate", BAD.relative_to(REPO), "--format", "json")
    assert proc.returncode == 2
    items = json.loads(proc.stdout)
    assert {i["code"] for i in items} == {"MLC101", "MLC102"}
    for item in items:
        assert set(item) == {"code", "severity", "message", "hint", "path", "file", "line", "col"}
        assert item["file"] == "tests/invalid/unknown_key_top.yaml"
        assert item["severity"] == "error"
    ok = mlc("validate", CREDIT, "--format", "json")
    assert ok.returncode == 0
    assert json.loads(ok.stdout) == []


def test_validate_github_format() -> None:
    proc = mlc("validate", BAD.relative_to(REPO), "--format", "github")
    assert proc.returncode == 2
    lines = proc.stdout.strip().splitlines()
    assert (
        "::error file=tests/invalid/unknown_key_top.yaml,line=30,col=1,title=MLC101::"
        "unknown key 'trainig' (hint: did you mean 'training'?)"
    ) in lines
    assert all(line.startswith("::error file=") for line in lines)


def test_wrong_flag_is_a_usage_error() -> None:
    proc = mlc("validate", CREDIT, "--no-such-flag")
    assert proc.returncode == 2
    assert "No such option" in proc.stderr and "Usage:" in proc.stderr
    _no_traceback(proc)
    unknown = mlc("frobnicate")
    assert unknown.returncode == 2
    _no_traceback(unknown)
    bad_choice = mlc("validate", CREDIT, "--format", "xml")
    assert bad_choice.returncode == 2
    _no_traceback(bad_choice)


def test_compile_ir_and_manifest(tmp_path: Path, credit_copy: Path) -> None:
    proc = mlc("compile", credit_copy, "-t", "ir", "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "out" / "ir"
    assert sorted(p.name for p in folder.iterdir()) == ["ir.json", "mlc-manifest.json"]
    manifest = json.loads((folder / "mlc-manifest.json").read_text())
    assert manifest["target"] == "ir" and manifest["name"] == "credit-risk"
    assert set(manifest["files"]) == {"ir.json"}
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest
    ir = json.loads((folder / "ir.json").read_text())
    assert manifest["spec_hash"] == ir["metadata"]["spec_hash"]
    assert str(tmp_path) not in (folder / "ir.json").read_text()
    assert str(REPO) not in (folder / "ir.json").read_text()


def test_compile_needs_a_target(tmp_path: Path) -> None:
    proc = mlc("compile", CREDIT, "-o", tmp_path)
    assert proc.returncode == 2
    assert "--target" in proc.stderr


def test_compile_error_writes_nothing(tmp_path: Path) -> None:
    proc = mlc("compile", BAD, "-t", "ir", "-o", tmp_path / "out")
    assert proc.returncode == 2
    assert not (tmp_path / "out").exists()
    unknown = mlc("compile", CREDIT, "-t", "irr", "-o", tmp_path / "out")
    assert unknown.returncode == 2
    assert "error[MLC401]: unknown target 'irr'" in unknown.stderr
    assert "did you mean 'ir'?" in unknown.stderr
    assert not (tmp_path / "out").exists()


def test_compile_is_byte_identical_across_hash_seeds(tmp_path: Path, credit_copy: Path) -> None:
    outputs = []
    for seed in ("0", "1", "12345"):
        out = tmp_path / f"seed{seed}"
        proc = mlc("compile", credit_copy, "-t", "ir", "-o", out, PYTHONHASHSEED=seed)
        assert proc.returncode == 0, proc.stderr
        graph = mlc("graph", CREDIT, "--as", "dot", PYTHONHASHSEED=seed)
        assert graph.returncode == 0
        files = {
            p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*"))
            if p.is_file()
        }
        outputs.append((files, graph.stdout))
    assert outputs[0] == outputs[1] == outputs[2]


def test_graph_mermaid_and_dot(tmp_path: Path) -> None:
    proc = mlc("graph", CREDIT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("flowchart TD\n")
    assert "ingest_applications -->|dataset| validate" in proc.stdout
    dot_proc = mlc("graph", CREDIT, "--as", "dot", "-o", tmp_path / "g.dot")
    assert dot_proc.returncode == 0
    text = (tmp_path / "g.dot").read_text()
    assert text.startswith('digraph "credit-risk" {') and text.rstrip().endswith("}")
    assert '"fairness" -> "evaluate" [label="model"];' in text


def test_graph_dot_is_valid_graphviz(tmp_path: Path) -> None:
    dot_exe = require_tool("dot")
    text = mlc("graph", CREDIT, "--as", "dot").stdout
    check = subprocess.run(
        [dot_exe, "-Tcanon"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert check.returncode == 0, check.stderr


def test_graph_svg(tmp_path: Path) -> None:
    require_tool("dot")
    proc = mlc("graph", CREDIT, "--as", "svg", "-o", tmp_path / "g.svg")
    assert proc.returncode == 0, proc.stderr
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg and "model_card" in svg
    import xml.etree.ElementTree as ET

    assert ET.fromstring(svg).tag.endswith("svg")
    binary_to_stdout = mlc("graph", CREDIT, "--as", "png")
    assert binary_to_stdout.returncode == 2
    assert "--out" in binary_to_stdout.stderr


def test_graph_of_bad_spec() -> None:
    proc = mlc("graph", BAD)
    assert proc.returncode == 2
    assert "error[MLC101]" in proc.stderr
    _no_traceback(proc)


def test_schema(tmp_path: Path) -> None:
    proc = mlc("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert "data" in schema["properties"] and "name" in schema["required"]
    assert mlc("schema", "-o", tmp_path / "s.json").returncode == 0
    assert (tmp_path / "s.json").read_text() == proc.stdout


def test_schema_accepts_the_example_and_rejects_bad_specs() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json.loads(mlc("schema").stdout)
    example = yaml.safe_load(CREDIT.read_text())
    example.pop("defaults")
    jsonschema.validate(example, schema)
    bad = yaml.safe_load(BAD.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_targets() -> None:
    proc = mlc("targets", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["ir"]["realises"] == []
    assert all(set(r) >= {"name", "description", "realises", "supports"} for r in rows.values())
    table = mlc("targets")
    assert table.returncode == 0 and "ir" in table.stdout


def test_init_then_validate_and_compile(tmp_path: Path) -> None:
    project = tmp_path / "churn-model"
    proc = mlc("init", project)
    assert proc.returncode == 0, proc.stderr
    assert (project / "mlc.yaml").exists() and (project / "env" / "prod.yaml").exists()
    assert mlc("validate", project / "mlc.yaml").returncode == 0
    assert mlc("validate", project / "mlc.yaml", "env=prod").returncode == 0
    assert mlc("compile", project / "mlc.yaml", "-t", "ir", "-o", tmp_path / "o").returncode == 0
    ir = json.loads((tmp_path / "o" / "ir" / "ir.json").read_text())
    assert ir["name"] == "churn-model"
    again = mlc("init", project)
    assert again.returncode == 2
    assert "error[MLC041]" in again.stderr and "--force" in again.stderr
    assert mlc("init", project, "--force").returncode == 0
    bad_name = mlc("init", tmp_path / "x", "--name", "Bad_Name")
    assert bad_name.returncode == 2 and "error[MLC040]" in bad_name.stderr


def test_validate_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from mlc.compiler.cli import main\n"
        f"sys.argv = ['mlc', 'validate', {str(CREDIT)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_exit_without_teardown_keeps_code_output_and_exit_handlers(tmp_path: Path) -> None:
    """With the ML stack loaded, `main` ends through `os._exit`: nothing else may change."""
    code = (
        "import atexit, sys\n"
        "import sklearn\n"
        "atexit.register(lambda: print('handler ran', flush=True))\n"
        "from mlc.compiler.cli import main\n"
        f"sys.argv = ['mlc', 'validate', {str(tmp_path / 'missing.yaml')!r}]\n"
        "print('buffered', end='')\n"
        "main()\n"
        "print('not reached')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "missing.yaml" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout.startswith("buffered") and "handler ran" in proc.stdout
    assert "not reached" not in proc.stdout


def test_full_exit_runs_finalisers_when_asked() -> None:
    code = (
        "import sys\n"
        "import sklearn\n"
        "class Finalised:\n"
        "    def __del__(self):\n"
        "        print('finalised', flush=True)\n"
        "keep = Finalised()\n"
        "from mlc.compiler.cli import main\n"
        "sys.argv = ['mlc', 'validate', 'missing.yaml']\n"
        "main()\n"
    )
    runs = {
        flag: subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "MLC_FULL_EXIT": flag},
        )
        for flag in ("0", "1")
    }
    assert [p.returncode for p in runs.values()] == [2, 2]
    assert "finalised" not in runs["0"].stdout  # the fast exit skips module teardown
    assert "finalised" in runs["1"].stdout


def test_command_table_matches_what_the_modules_register() -> None:
    """`main` imports one module per command from `COMMANDS`: it must name them all."""
    from mlc.compiler.cli import COMMANDS, load_commands

    app = load_commands()
    names = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    names |= {g.name for g in app.registered_groups if g.name}
    assert names == set(COMMANDS)


@pytest.mark.parametrize("args", [["targets", "--json"], ["targets"], ["schema"]])
def test_a_reader_that_went_away_is_not_an_error(args: list[str]) -> None:
    # `mlc targets | head -c 1`: stdout's reader is gone before mlc writes. click (plain
    # output) and rich (tables) each catch the EPIPE and exit 1 on their own.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "from mlc.compiler.cli import main; main()", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
            cwd=REPO,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
