"""Shared pytest options and fixtures, and the guard that the suite leaves the tree unchanged."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from support import CREDIT, EXAMPLES, REPO
from support.tree import left_behind, snapshot

_BEFORE = pytest.StashKey[frozenset[str] | None]()
_MLFLOW_HOME: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="Rewrite golden files from current output (review the diff like code).",
    )


def pytest_configure(config: pytest.Config) -> None:
    # MLflow's default store is `./mlflow.db` in the working directory: any MLflow call in a test
    # process that no step pointed elsewhere would create it in the repository (it happened). Each
    # test process gets a default of its own in a temporary folder instead.
    if "MLFLOW_TRACKING_URI" not in os.environ:
        home = tempfile.mkdtemp(prefix="mlc-tests-mlflow-")
        _MLFLOW_HOME.append(home)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"


def pytest_unconfigure(config: pytest.Config) -> None:
    for home in _MLFLOW_HOME:
        shutil.rmtree(home, ignore_errors=True)


def _controller(session: pytest.Session) -> bool:
    return not hasattr(session.config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if _controller(session):
        session.stash[_BEFORE] = snapshot(REPO)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test wrote into the working tree (goldens updates excepted)."""
    if not _controller(session) or session.config.getoption("--update-goldens"):
        return
    stray = left_behind(session.stash.get(_BEFORE, None), snapshot(REPO))
    if not stray:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "the test run changed the working tree (tests must write under tmp_path):\n" + (
        "\n".join(f"  {entry}" for entry in stray)
    )
    if reporter is not None:
        reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture
def credit_spec() -> Path:
    return CREDIT


@pytest.fixture
def credit_copy(tmp_path: Path) -> Path:
    """The credit example's spec in a copy of its project: commands that write project state
    (the compile record in `.mlc/audit.jsonl`, runs) must not write into the repository."""
    project = tmp_path / "credit"
    shutil.copytree(EXAMPLES / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out"))
    return project / "mlc.yaml"
