"""`drift_score` as a rollback condition: the server scores the canary's inputs against its
version's reference profile, with the same PSI `mlc monitor` computes from the raw reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlc.runtime import drift, profile
from mlc.runtime.serving.rollout import DRIFT_SAMPLE, Window, drift_score, judge

CONDITIONS = [{"metric": "drift_score", "op": ">", "threshold": 0.2}]


def _reference(n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.5, n),
            "age": rng.integers(18, 90, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )


def test_the_score_is_the_largest_psi_of_the_raw_computation() -> None:
    ref = _reference()
    prof = profile.loads(profile.dumps(profile.build(ref)))
    rng = np.random.default_rng(2)
    current = _reference(800).assign(income=lambda d: d["income"] * rng.uniform(1.5, 3.0, 800))
    got = drift_score(prof, current.to_dict("records"))
    expected = {c: drift.psi(ref[c], current[c]) for c in ("income", "age", "region")}
    assert got["feature"] == "income"
    for name, value in expected.items():
        assert got["psi"][name] == pytest.approx(value, abs=1e-6)
    assert got["value"] == pytest.approx(max(expected.values()), abs=1e-6)


def test_judgement_fails_on_drift_passes_without_and_waits_for_rows() -> None:
    ref = _reference()
    prof = profile.build(ref)
    same = drift_score(prof, _reference(800).to_dict("records"))
    moved = drift_score(prof, ref.assign(age=ref["age"] + 30).head(800).to_dict("records"))
    counts = [0] * 20
    verdict, evidence = judge(CONDITIONS, 500, 0, counts, 100, moved)
    assert verdict == "fail" and evidence["conditions"][0]["feature"] == "age"
    assert judge(CONDITIONS, 500, 0, counts, 100, same)[0] == "pass"
    # no profile (or no rows yet): never a pass
    assert judge(CONDITIONS, 500, 0, counts, 100, None)[0] == "inconclusive"
    assert judge(CONDITIONS, 50, 0, counts, 100, moved)[0] == "inconclusive"


def test_the_window_keeps_a_bounded_uniform_sample() -> None:
    window = Window()
    window.keep_rows([{"x": float(i)} for i in range(3 * DRIFT_SAMPLE)])
    kept = np.asarray([r["x"] for r in window.sample])
    assert len(kept) == DRIFT_SAMPLE
    # a uniform reservoir over 0..3N: about a third from each third of the stream
    thirds = np.bincount((kept // DRIFT_SAMPLE).astype(int), minlength=3) / DRIFT_SAMPLE
    assert np.all(np.abs(thirds - 1 / 3) < 0.05)
