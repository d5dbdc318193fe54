"""The Dockerfiles the kfp and serving targets emit: the extras each spec's model and steps need,
shell that parses, and paths that resolve in an installed mlc (no Docker engine here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import CREDIT, DIABETES
from support.tools import require_tool

from mlc.compiler.api import compile_spec


def _dockerfile(tmp_path: Path, spec: Path, target: str, *overrides: str) -> str:
    compile_spec(spec, [target], tmp_path, list(overrides))
    return (tmp_path / target / "Dockerfile").read_text()


def _package(text: str) -> str:
    found = re.search(r'^ARG MLC_PACKAGE="mlc\[([a-z,]+)\]==', text, re.M)
    assert found, text
    return found.group(1)


# diabetes is served by the k8s target's batch CronJob, credit by KServe; both run `mlc` in
# the serving image
@pytest.mark.parametrize(
    ("spec", "overrides", "kfp", "serving"),
    [
        (CREDIT, (), "ml,kfp", "ml,serve"),
        (CREDIT, ("+engine=spark",), "ml,kfp,spark", "ml,serve"),
        (DIABETES, (), "ml,kfp,torch", "ml,serve,torch"),
        (DIABETES, ("+framework=xgboost",), "ml,kfp,boost", "ml,serve,boost"),
        (DIABETES, ("+framework=keras",), "ml,kfp,keras", "ml,serve,keras"),
        (
            DIABETES,
            ("+framework=keras", "training.keras.backend=tensorflow"),
            "ml,kfp,tensorflow",
            "ml,serve,tensorflow",
        ),
    ],
    ids=["sklearn", "spark-engine", "lightning", "xgboost", "keras", "keras-tensorflow"],
)
def test_images_install_the_extras_the_spec_needs(
    tmp_path: Path, spec: Path, overrides: tuple[str, ...], kfp: str, serving: str
) -> None:
    assert _package(_dockerfile(tmp_path / "kfp", spec, "kfp", *overrides)) == kfp
    if spec == DIABETES:
        serve = _dockerfile(tmp_path / "k8s", spec, "k8s", *overrides, "+serving=batch")
    else:
        serve = _dockerfile(tmp_path / "kserve", spec, "kserve", *overrides)
    assert _package(serve) == serving


def _runs(text: str) -> list[str]:
    """The RUN instructions' shell commands, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    return [line[4:] for line in joined.splitlines() if line.startswith("RUN ")]


def test_a_spark_engine_image_is_laid_out_for_the_operators_pods(tmp_path: Path) -> None:
    text = _dockerfile(tmp_path, CREDIT, "kfp", "+engine=spark")
    from mlc.targets._image import DRIVER_FILE, SPARK_VERSION

    assert f"FROM apache/spark:{SPARK_VERSION} AS spark" in text.splitlines()
    assert "COPY --from=spark /opt/entrypoint.sh /opt/decom.sh /opt/" in text
    assert 'ENTRYPOINT ["/opt/entrypoint.sh"]' in text
    assert "ENV JAVA_HOME=/opt/java SPARK_HOME=/opt/spark PYSPARK_PYTHON=python" in text
    runs = _runs(text)
    assert any("openjdk-17-jre-headless tini" in r for r in runs)
    assert any(DRIVER_FILE.removeprefix("local://") in r for r in runs)
    bash = require_tool("bash")
    for command in runs:
        check = subprocess.run([bash, "-n", "-c", command], capture_output=True, text=True)
        assert check.returncode == 0, (command, check.stderr)


def test_the_spark_layout_commands_resolve_in_an_installed_mlc(tmp_path: Path) -> None:
    """The `$(...)` lookups of the RUN lines, run here: SPARK_HOME is pyspark's folder with
    Spark's launcher and jars, the driver file exists, JAVA_HOME holds bin/java."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    text = _dockerfile(tmp_path, CREDIT, "kfp", "+engine=spark")
    lookups = re.findall(r"\"\$\(python -c '([^']+)'\)\"", text)
    assert len(lookups) == 2
    spark_home, driver = (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for code in lookups
    )
    assert (Path(spark_home) / "bin" / "spark-submit").is_file()
    assert any((Path(spark_home) / "jars").glob("spark-core_*.jar"))
    assert Path(driver).is_file() and Path(driver).name == "driver.py"
    require_tool("java")
    home = re.search(r'ln -s ("\$\(dirname .*\)") /opt/java', text)
    assert home is not None
    found = subprocess.run(
        ["bash", "-c", f"printf %s {home.group(1)}"], capture_output=True, text=True, check=True
    ).stdout
    assert (Path(found) / "bin" / "java").exists()


def test_serving_targets_ship_the_runtime_image_their_jobs_run_in(tmp_path: Path) -> None:
    """The loop's CronJob retrains and the batch job scores in the runtime image: its
    Dockerfile is beside the serving one, Spark-laid-out for a spark-engine batch."""
    compile_spec(CREDIT, ["kserve"], tmp_path / "kserve", [])
    loop = (tmp_path / "kserve" / "kserve" / "runtime.Dockerfile").read_text()
    assert _package(loop) == "ml" and "apache/spark" not in loop
    compile_spec(DIABETES, ["k8s"], tmp_path / "k8s", ["+serving=batch", "+engine=spark"])
    folder = tmp_path / "k8s" / "k8s"
    assert (folder / "batch" / "scheduledsparkapplication.yaml").exists()
    batch = (folder / "runtime.Dockerfile").read_text()
    assert _package(batch) == "ml,torch,spark"
    assert 'ENTRYPOINT ["/opt/entrypoint.sh"]' in batch
    assert "-t ghcr.io/mlc-project/mlc-runtime:0.1.0" in batch
