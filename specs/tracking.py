"""The `tracking` section: the MLflow tracking server and artifact store every target uses.

Unset, runs register into an embedded sqlite store beside the project (`.mlc/mlflow.db`, with
artifacts under `.mlc/mlartifacts`): fine on one machine, lost with a pod. On a cluster name a
tracking server (and, for it, an artifact location the pods can reach): the kfp components,
`mlc run`, `mlc batch`, `mlc serve` and the serving manifests then all use it. Each value is a
plain URL or a secret reference (`env:MLFLOW_TRACKING_URI`, `vault:…`), resolved from the
environment where the step runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import Field

from mlc.specs._base import StrictModel, Violation, is_secret_ref

_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file")
_ARTIFACTS = ("s3", "gs", "wasbs", "abfss", "file", "hdfs", "mlflow-artifacts", "http", "https")
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://")


class Tracking(StrictModel):
    uri: str | None = Field(None, min_length=1)
    """MLflow tracking URI (`http://mlflow.mlflow.svc:5000`, `postgresql://…`) or a secret
    reference to one. None: the project's embedded sqlite store."""
    artifact_location: str | None = Field(None, min_length=1)
    """Where new experiments keep their artifacts (`s3://bucket/mlflow`). None: the server's
    default, or `.mlc/mlartifacts` for the embedded store."""

    def violations(self) -> Iterator[Violation]:
        for key, value, schemes in (
            ("uri", self.uri, _SCHEMES),
            ("artifact_location", self.artifact_location, _ARTIFACTS),
        ):
            if value is None or is_secret_ref(value):
                continue
            found = _URL.match(value)
            scheme = found.group(1).split("+")[0] if found else None
            if scheme not in schemes:
                yield Violation(
                    (key,),
                    "MLC363",
                    f"tracking.{key} {value[:80]!r} is neither a URL MLflow reads nor a "
                    "secret reference",
                    "write one of " + ", ".join(f"{s}://…" for s in schemes) + " or 'env:NAME'",
                )
