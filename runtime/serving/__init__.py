"""The serving runtime behind `mlc serve`: a plan file in, an HTTP model server out.

`plan` defines the plan, `models` loads the tracks, `guards` checks requests against the data
contract, `protocols` speaks Open Inference v2, KServe v1 and MLflow, `routing` picks a track,
`metrics` exports the series of `mlc.runtime.metrics_contract`, `predlog` keeps the prediction
log, `app` puts them together and `__main__` runs it with uvicorn.
"""

from mlc.runtime.serving.predlog import read_log

__all__ = ["read_log"]
