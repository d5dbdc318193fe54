"""Hostile and unlucky inputs: bounded loading, refused tags and files, clean file-system errors.

Every case ends in a located diagnostic or an `mlc: error:` line with exit 2, never a hang, a
memory blow-up or exit 1 ("internal error"). Cases that could hang or eat memory on a regression
run the CLI in a subprocess under a timeout and an address-space cap, so a regression fails
the test instead of the machine.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlc.compiler import load
from mlc.compiler.api import check
from mlc.compiler.cli import app
from mlc.compiler.diagnostics import Diagnostic, DiagnosticError
from mlc.compiler.load import load_spec, read_yaml
from mlc.compiler.output import OutputError, write_file, write_tree

REPO = Path(__file__).resolve().parents[2]
MLC = REPO / ".venv" / "bin" / "mlc"
CREDIT_DIR = REPO / "examples" / "credit"
MEMORY_CAP = 1024**3
"""Address space for a CLI run that must stay small: the alias bomb needed more than 2.7 GB."""


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _cli(*args: str | Path, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real `mlc` in a subprocess, capped in memory and time."""
    return subprocess.run(
        [str(MLC), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_capped,
        check=False,
    )


def _clean_exit_2(proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "internal error" not in out, out
    return out


def _errors(spec: Path) -> list[Diagnostic]:
    with pytest.raises(DiagnosticError) as info:
        load_spec(spec)
    return list(info.value.diagnostics)


def _only(spec: Path) -> Diagnostic:
    diags = _errors(spec)
    assert len(diags) == 1, diags
    return diags[0]


def _at(d: Diagnostic) -> tuple[str, int, int]:
    assert d.location is not None, d
    return str(Path(d.location.file).resolve()), d.location.line, d.location.col


def _laughs(levels: int = 9, width: int = 9) -> str:
    """The 'billion laughs': each level lists the previous one `width` times."""
    lines = ["name: bomb", "a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


# -- the bounded loader -------------------------------------------------------------------------


def test_alias_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    text = _laughs()
    assert len(text.encode()) < 700
    (tmp_path / "mlc.yaml").write_text(text)
    out = _clean_exit_2(_cli("validate", "mlc.yaml", cwd=tmp_path))
    assert "error[MLC013]: aliases expand to more than" in out, out
    assert f"MAX_ALIAS_NODES = {load.MAX_ALIAS_NODES}" in out
    # a level of 9 * 9^k nodes passes the limit at the first k with 9^(k+1) > the limit
    line = next(k for k in range(1, 9) if 9 ** (k + 1) > load.MAX_ALIAS_NODES) + 2
    assert f"mlc.yaml:{line}:1: error[MLC013]" in out, out


def test_merge_key_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    """Merge keys (`<<: [*a, *a, ...]`) multiply like aliases; PyYAML's flattening did too."""
    lines = ["name: bomb", "m0: &m0 {" + ", ".join(f"k{i}: v" for i in range(9)) + "}"]
    for i in range(1, 9):
        lines.append(f"m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 9) + "]}")
    (tmp_path / "mlc.yaml").write_text("\n".join(lines) + "\n")
    out = _clean_exit_2(_cli("validate", "mlc.yaml", cwd=tmp_path))
    assert "error[MLC013]: aliases expand to more than" in out, out


def test_reuse_below_the_limit_still_works(tmp_path: Path) -> None:
    """Anchors and merge keys as real specs use them: explicit keys win over merged ones."""
    spec = tmp_path / "mlc.yaml"
    spec.write_text(
        "name: a\n"
        "base: &base {seed: 1, retries: 2}\n"
        "training:\n"
        "  <<: *base\n"
        "  retries: 5\n"
        "copy: *base\n"
    )
    data, smap = read_yaml(spec)
    assert data["training"] == {"seed": 1, "retries": 5}
    assert data["copy"] == {"seed": 1, "retries": 2}
    seed = smap.locate(("training", "seed"))
    retries = smap.locate(("training", "retries"))
    assert seed is not None and (seed.line, seed.col) == (2, 20)  # where the anchor wrote it
    assert retries is not None and (retries.line, retries.col) == (5, 12)


def test_nesting_deeper_than_the_limit(tmp_path: Path) -> None:
    depth = load.MAX_DEPTH + 1
    spec = tmp_path / "mlc.yaml"
    spec.write_text("name: deep\ntags: " + "[" * depth + "]" * depth + "\n")
    d = _only(spec)
    assert d.code == "MLC013"
    assert f"MAX_DEPTH = {load.MAX_DEPTH}" in d.message
    assert _at(d) == (str(spec.resolve()), 2, 7 + load.MAX_DEPTH)


def test_nesting_at_the_limit_loads(tmp_path: Path) -> None:
    depth = load.MAX_DEPTH - 1  # the top-level mapping is the first level
    spec = tmp_path / "mlc.yaml"
    spec.write_text("name: deep\ntags: " + "[" * depth + "]" * depth + "\n")
    data, _ = read_yaml(spec)
    inner = data["tags"]
    for _ in range(depth - 1):
        (inner,) = inner
    assert inner == []


def test_anchor_inside_itself_is_a_depth_error(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_text("name: loop\ntags: &t [*t]\n")
    d = _only(spec)
    assert d.code == "MLC013" and "MAX_DEPTH" in d.message


def test_too_many_nodes(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_text("name: big\nitems: [" + ",".join(["0"] * load.MAX_NODES) + "]\n")
    d = _only(spec)
    assert d.code == "MLC013"
    assert f"MAX_NODES = {load.MAX_NODES}" in d.message
    assert d.location is not None and d.location.line == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!float abc", "'abc' is not a valid !!float value"),
        ("!!int 0xZZ", "'0xZZ' is not a valid !!int value"),
        ("!!bool maybe", "'maybe' is not a valid !!bool value"),
        ("!!timestamp nope", "'nope' is not a valid !!timestamp value"),
        ("2024-13-45", "'2024-13-45' is not a valid !!timestamp value"),
        ("1" + "0" * 5000, "more than"),
        ("!!python/object:os.system {}", "tag '!!python/object:os.system' is not allowed"),
        ("!!python/name:os.system x", "tag '!!python/name:os.system' is not allowed"),
        ("!!python/object/apply:os.system [ls]", "'!!python/object/apply:os.system' is not"),
        ("!!binary aGk=", "tag '!!binary' is not allowed"),
        ("!!set {a: null}", "tag '!!set' is not allowed"),
        ("!!omap [{a: 1}]", "tag '!!omap' is not allowed"),
        ("!custom x", "tag '!custom' is not allowed"),
    ],
)
def test_tags_outside_the_safe_set_are_refused(tmp_path: Path, value: str, message: str) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_text(f"name: tags\nvalue: {value}\n")
    d = _only(spec)
    assert d.code == "MLC002"
    assert message in d.message, d.message
    assert _at(d) == (str(spec.resolve()), 2, 8)


def test_plain_tags_still_mean_what_they_say(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_text(
        "name: tags\nv:\n  a: !!str 10\n  b: !!float 1\n  c: !!int '7'\n  d: !!null ''\n"
        "  e: !!bool yes\n  f: 2024-01-02\n  g: !!map {x: 1}\n  h: !!seq [1]\n"
    )
    data, _ = read_yaml(spec)
    assert data["v"] == {
        "a": "10",
        "b": 1.0,
        "c": 7,
        "d": None,
        "e": True,
        "f": "2024-01-02",
        "g": {"x": 1},
        "h": [1],
    }


def test_bad_tag_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "mlc.yaml").write_text("name: x\nvalue: !!float abc\n")
    out = _clean_exit_2(_cli("validate", "mlc.yaml", cwd=tmp_path))
    assert "mlc.yaml:2:8: error[MLC002]: 'abc' is not a valid !!float value" in out


def test_a_complex_key_is_not_constructed(tmp_path: Path) -> None:
    """A key that is an alias to a bomb is refused as a key before anything expands."""
    spec = tmp_path / "mlc.yaml"
    spec.write_text(_laughs() + "? *a8\n: x\n")
    diags = _errors(spec)
    assert diags[0].code in ("MLC009", "MLC013")
    assert diags[0].location is not None


# -- files that are not spec files --------------------------------------------------------------


def test_named_pipe_is_refused_without_waiting(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "mlc.yaml")
    out = _clean_exit_2(_cli("validate", "mlc.yaml", cwd=tmp_path, timeout=30))
    assert "error[MLC001]: mlc.yaml is a named pipe, not a regular file" in out


@pytest.mark.parametrize(
    ("path", "what"),
    [("/proc/self/status", "kernel pseudo-file (/proc)"), ("/dev/null", "a character device")],
)
def test_kernel_files_are_refused(tmp_path: Path, path: str, what: str) -> None:
    out = _clean_exit_2(_cli("validate", path, cwd=tmp_path, timeout=30))
    assert "error[MLC001]: " in out and what in out, out


def test_symlink_loop_as_spec(tmp_path: Path) -> None:
    os.symlink("b.yaml", tmp_path / "a.yaml")
    os.symlink("a.yaml", tmp_path / "b.yaml")
    out = _clean_exit_2(_cli("validate", "a.yaml", cwd=tmp_path, timeout=30))
    assert "error[MLC001]: a.yaml is a symlink loop" in out


def test_directory_as_spec(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").mkdir()
    d = _only(tmp_path / "spec.yaml")
    assert d.code == "MLC001" and "is a directory, not a spec file" in d.message


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "credit"
    shutil.copytree(CREDIT_DIR, project, ignore=shutil.ignore_patterns(".mlc", "out"))
    return project


def test_overlay_that_is_a_folder_is_located(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "env" / "extra.yaml").mkdir()
    spec = project / "mlc.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("  - env: dev\n", "  - env: dev\n  - env/extra.yaml\n"))
    line = spec.read_text(encoding="utf-8").splitlines().index("  - env/extra.yaml") + 1
    d = _only(spec)
    assert d.code == "MLC001" and "is a directory" in d.message
    assert _at(d) == (str(spec.resolve()), line, 5)


def test_overlay_that_is_a_symlink_loop_is_located(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_text("name: a\ndefaults:\n  - loop.yaml\n")
    os.symlink("loop.yaml", tmp_path / "loop.yaml")
    d = _only(spec)
    assert d.code == "MLC001" and "symlink loop" in d.message
    assert _at(d) == (str(spec.resolve()), 3, 5)


def test_long_defaults_list_composes_in_linear_time(tmp_path: Path) -> None:
    """4,000 `defaults:` entries: each merge used to rescan the whole source map (minutes)."""
    project = _project(tmp_path)
    spec = project / "mlc.yaml"
    for i in range(2000):
        (project / "env" / f"o{i}.yaml").write_text(f"tags:\n  t{i % 40}: v{i}\n")
    # 2,000 overlays listed twice (a repeated `_self_` is refused, as Hydra does).
    entries = "  - _self_\n" + "".join(f"  - env/o{i}.yaml\n" for i in range(2000)) * 2
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("  - _self_\n  - env: dev\n", entries))
    script = (
        "import json, sys\n"
        "from mlc.compiler.load import load_spec\n"
        "loaded = load_spec(sys.argv[1])\n"
        "print(json.dumps([len(loaded.files), loaded.data['tags']]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_capped,
        check=True,
    )
    files, tags = yaml.safe_load(proc.stdout)
    assert files == 4001
    expected = dict(yaml.safe_load(text)["tags"])
    for i in range(2000):
        expected[f"t{i % 40}"] = f"v{i}"
    assert tags == expected


def test_overlays_listing_each_other_many_times_stop(tmp_path: Path) -> None:
    """No cycle, but 100 x 100 x 100 reads: the overlay count limit stops it."""
    (tmp_path / "c.yaml").write_text("tags: {a: b}\n")
    for name, sub in (("b.yaml", "c.yaml"), ("mlc.yaml", "b.yaml")):
        lines = [] if name != "mlc.yaml" else ["name: a"]
        lines += ["defaults:", *[f"  - {sub}"] * 100]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    d = _only(tmp_path / "mlc.yaml")
    assert d.code == "MLC013" and f"MAX_OVERLAYS = {load.MAX_OVERLAYS}" in d.message
    assert d.location is not None


# -- clean file-system errors from commands ------------------------------------------------------


def _compile(project: Path, out: str) -> tuple[int, str]:
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(project)
    try:
        result = runner.invoke(app, ["compile", "-t", "ir", "-o", out])
    finally:
        os.chdir(cwd)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("out", "said"),
    [
        ("file.txt", "cannot write 'file.txt': it is a file, not a folder"),
        ("file.txt/sub", "cannot write 'file.txt/sub': 'file.txt' is a file, not a folder"),
        ("loop", "cannot write 'loop': it is a symlink loop"),
        ("/proc/self/out", "cannot write '/proc/self/out': /proc is a kernel pseudo-file system"),
    ],
)
def test_unwritable_output_is_exit_2(tmp_path: Path, out: str, said: str) -> None:
    project = _project(tmp_path)
    (project / "file.txt").write_text("keep me\n")
    os.symlink("loop", project / "loop")
    code, output = _compile(project, out)
    assert code == 2, output
    assert "internal error" not in output and "Traceback" not in output
    assert f"mlc: error: {said}" in output, output
    assert (project / "file.txt").read_text() == "keep me\n"


def test_write_tree_never_replaces_a_file(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.write_text("a file the user named by mistake\n")
    with pytest.raises(OutputError) as info:
        write_tree(dest, {"a.txt": "x"})
    assert info.value.filename == str(dest) and "it is a file" in str(info.value.strerror)
    assert dest.read_text() == "a file the user named by mistake\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folder left


def test_write_file_names_the_users_path(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError) as info:
        write_file(tmp_path / "f" / "g" / "out.json", "{}")
    assert info.value.filename == str(tmp_path / "f" / "g")
    assert info.value.strerror == f"'{tmp_path / 'f'}' is a file, not a folder"


def test_schema_into_a_folder_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "-o", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert f"mlc: error: cannot write '{tmp_path}': it is a folder, not a file" in result.output


# -- every target diagnostic located --------------------------------------------------------------


def test_mlc430_points_at_the_target_entry(tmp_path: Path) -> None:
    """Terraform refusing an on-prem spec without a deployment points at `targets.terraform`."""
    project = _project(tmp_path)
    spec = project / "mlc.yaml"
    tree = yaml.safe_load(spec.read_text(encoding="utf-8"))
    for section in ("deployment", "monitoring", "feedback", "defaults"):
        tree.pop(section, None)
    tree["governance"].pop("compliance", None)
    tree["targets"] = {"ir": {}, "terraform": {}}
    spec.write_text(yaml.safe_dump(tree, sort_keys=False))
    result = check(spec, targets=["terraform"])
    (d,) = [d for d in result.diagnostics if d.code == "MLC430"]
    lines = spec.read_text(encoding="utf-8").splitlines()
    assert d.location is not None and d.path == "targets.terraform"
    assert lines[d.location.line - 1].strip().startswith("terraform:")


def test_repeated_self_is_refused_once_and_located(tmp_path: Path) -> None:
    """Each `_self_` merged the file's whole body again: 4,000 of them took seconds."""
    project = _project(tmp_path)
    spec = project / "mlc.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("  - _self_\n", "  - _self_\n" * 4000, 1))
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2, result.output
    found = [line for line in result.output.splitlines() if "error[MLC010]" in line]
    assert len(found) == 1 and "'_self_' appears 4000 times" in found[0]
    second = text.splitlines().index("  - _self_") + 2  # the first repeat is named
    assert f"mlc.yaml:{second}:5:" in found[0]


def test_repeated_group_is_refused_once_and_located(tmp_path: Path) -> None:
    """Hydra allows one option per group; 4,000 `- env: dev` read env/dev.yaml 4,000 times."""
    project = _project(tmp_path)
    spec = project / "mlc.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("  - env: dev\n", "  - env: dev\n" + "  - env: prod\n" * 3999, 1))
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2, result.output
    found = [line for line in result.output.splitlines() if "error[MLC010]" in line]
    assert len(found) == 1 and "overlay group 'env' appears 4000 times" in found[0]
    second = text.splitlines().index("  - env: dev") + 2
    assert f"mlc.yaml:{second}:" in found[0]


def test_overlay_option_too_long_for_a_file_name_is_located(tmp_path: Path) -> None:
    project = _project(tmp_path)
    spec = project / "mlc.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("  - env: dev\n", "  - env: " + "a" * 300 + "\n", 1))
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2, result.output
    assert "error[MLC011]" in result.output and "not a usable file name" in result.output
    line = text.splitlines().index("  - env: dev") + 1
    assert f"mlc.yaml:{line}:" in result.output
