"""Packaging: every code folder ships in the `mlc` namespace, with its data, and nothing else.

An unlisted package folder silently drops out of the wheel, so the list in `pyproject.toml` is
compared with the folders on disk; a slow test builds the wheel and reads what is inside.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CODE_FOLDERS = ("compiler", "specs", "targets", "runtime")


def _setuptools() -> dict[str, object]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    tool: dict[str, object] = config["tool"]["setuptools"]
    return tool


def _package_folders() -> dict[str, Path]:
    """`mlc.<dotted>` -> folder, for every folder below the code folders that holds Python."""
    found = {}
    for top in CODE_FOLDERS:
        for folder in [REPO / top, *sorted(p for p in (REPO / top).rglob("*") if p.is_dir())]:
            if "__pycache__" in folder.parts or any(part.startswith(".") for part in folder.parts):
                continue
            if any(folder.glob("*.py")):
                rel = folder.relative_to(REPO).parts
                found[".".join(("mlc", *rel))] = folder
    return found


def test_package_dir_maps_each_code_folder() -> None:
    package_dir = _setuptools()["package-dir"]
    assert package_dir == {f"mlc.{top}": top for top in CODE_FOLDERS}


def test_every_package_folder_is_listed() -> None:
    listed = set(_setuptools()["packages"])  # type: ignore[call-overload]
    on_disk = _package_folders()
    missing = sorted(set(on_disk) - listed)
    assert not missing, (
        f"package folders not in [tool.setuptools] packages (they would not ship): {missing}"
    )
    gone = sorted(listed - set(on_disk))
    assert not gone, f"listed packages without a folder: {gone}"


def test_package_folders_have_init() -> None:
    # Only `mlc` itself is a namespace; a subfolder without __init__.py would be an implicit
    # namespace that tools (mypy, pytest) treat differently from the installed layout.
    missing = sorted(
        str(folder.relative_to(REPO))
        for folder in _package_folders().values()
        if not (folder / "__init__.py").exists()
    )
    assert not missing, f"add __init__.py to: {missing}"


def test_schema_file_matches_mlc_schema() -> None:
    from mlc.specs.schema import json_schema_text

    committed = (REPO / "specs" / "mlc.schema.json").read_text(encoding="utf-8")
    assert committed == json_schema_text(), (
        "specs/mlc.schema.json is stale: run `mlc schema -o specs/mlc.schema.json`"
    )


def test_schema_command_prints_the_same(tmp_path: Path) -> None:
    mlc = Path(sys.executable).with_name("mlc")
    out = subprocess.run([str(mlc), "schema"], capture_output=True, check=True, timeout=120)
    assert out.stdout == (REPO / "specs" / "mlc.schema.json").read_bytes()


@pytest.mark.slow
def test_wheel_holds_only_the_mlc_namespace(tmp_path: Path) -> None:
    # Build from a clean copy: an in-tree build reuses build/lib, where deleted modules linger.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*")
    for top in CODE_FOLDERS:
        shutil.copytree(REPO / top, source / top, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    # The backend is called directly: pip hides its warnings (license format, package data
    # that setuptools takes for unlisted packages), and those must stay at zero.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, setuptools.build_meta as b; b.build_wheel(sys.argv[1])",
            str(tmp_path),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    warned = [line for line in proc.stderr.splitlines() if "Warning" in line]
    assert not warned, "setuptools warned while building the wheel:\n" + "\n".join(warned)
    (wheel,) = tmp_path.glob("mlc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    code = [n for n in names if ".dist-info/" not in n]
    stray = sorted(n for n in code if not n.startswith("mlc/"))
    assert not stray, f"files outside the mlc namespace: {stray[:20]}"
    assert "mlc/__init__.py" not in names, "mlc is a namespace package (PEP 420)"
    for package in _package_folders():
        init = package.replace(".", "/") + "/__init__.py"
        assert init in names, f"{package} is missing from the wheel"
    assert "mlc/specs/mlc.schema.json" in names
    # Templates and other data beside the code ship too (jinja2 templates, policies, …).
    data_on_disk = sorted(
        "mlc/" + p.relative_to(REPO).as_posix()
        for top in CODE_FOLDERS
        for pattern in ("*.j2", "*.json", "*.yaml")
        for p in (REPO / top).rglob(pattern)
        if "__pycache__" not in p.parts and p.parent in _package_folders().values()
    )
    data_on_disk += sorted(
        "mlc/" + p.relative_to(REPO).as_posix()
        for p in (REPO / "targets").rglob("templates/*/*.j2")
    )
    missing = [d for d in data_on_disk if d not in names]
    assert not missing, f"package data missing from the wheel: {missing}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[mlc.targets]" in text and "ir = mlc.targets.ir:IRTarget" in text
    assert "mlc = mlc.compiler.cli:main" in text


def test_version_constant_matches_the_distribution() -> None:
    from importlib.metadata import version

    from mlc.compiler import __version__

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == declared == version("mlc")
