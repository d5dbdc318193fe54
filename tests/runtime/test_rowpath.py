"""The compiled one-row path (runtime/rowpath.py) against scikit-learn's own batch path.

Each fitted model is scored twice on every row of held-out data: once as a whole frame by
the model itself, once row by row through `compile_row`. The two must agree to 1e-9 (most
agree bit for bit), for binary, multi-class and regression tasks, for every transform the
features step builds, for estimators the module replays (gradient-boosted trees) and for
those it calls (any other estimator), and for fairlearn's threshold rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.credit_like import PURPOSES, REGIONS

from mlc.runtime import artifacts
from mlc.runtime.rowpath import Unsupported, compile_row

KEY_REF = "env:MLC_TEST_ROWPATH_KEY"


def _data(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "income": rng.lognormal(10, 0.5, rows).round(2),
            "debt": rng.lognormal(8, 1.0, rows).round(2),
            "months": np.where(rng.random(rows) < 0.15, np.nan, rng.integers(0, 400, rows)),
            "region": rng.choice(REGIONS, rows),
            "purpose": rng.choice(PURPOSES, rows),
            "sex": rng.choice(["female", "male"], rows),
            "email": [f"user{i}@example.com" for i in rng.integers(0, 10_000, rows)],
        }
    )
    score = (df["age"] - 50) / 20 + np.log1p(df["income"]) - 10 + (df["region"] == "east")
    df["binary"] = (score + rng.normal(0, 0.5, rows) > 0).astype(int)
    df["klass"] = np.digitize(score + rng.normal(0, 0.5, rows), [-0.5, 0.5])
    df["amount"] = score * 3 + rng.normal(0, 1, rows) + 20
    return df


FEATURES = ["age", "income", "debt", "months", "region", "purpose", "sex", "email"]


def _transform(pseudonym: bool = True) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        MinMaxScaler,
        OneHotEncoder,
        RobustScaler,
        StandardScaler,
    )

    from mlc.runtime.steps._transforms import DerivedFeatures, LogTransform, Pseudonymiser
    from mlc.runtime.steps.features import _digitize

    entries: list[Any] = [
        ("scale", StandardScaler(), ["age", "debt_ratio"]),
        ("log+scale", Pipeline([("log", LogTransform()), ("s", StandardScaler())]), ["income"]),
        (
            "impute+minmax",
            Pipeline([("i", SimpleImputer(strategy="median")), ("m", MinMaxScaler())]),
            ["months"],
        ),
        ("robust", RobustScaler(), ["debt"]),
        (
            "buckets",
            FunctionTransformer(_digitize, kw_args={"edges": [30.0, 45.0, 60.0]}),
            ["age"],
        ),
        ("flag", "passthrough", ["big"]),
        ("hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["region", "purpose"]),
    ]
    if pseudonym:
        p = Pseudonymiser(key_ref=KEY_REF, buckets=256)
        p.bind_key("rowpath-test-key")
        entries.append(("pseudo", p, ["email"]))
    derived = (("debt_ratio", "debt / income"), ("big", "(income > 30000) & (age >= 30)"))
    return Pipeline(
        [
            ("derive", DerivedFeatures(derived)),
            ("columns", ColumnTransformer(entries, remainder="drop")),
        ]
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the server's guard types them: plain numbers and texts, None for missing."""
    out = []
    for rec in frame.to_dict("records"):
        out.append(
            {
                k: (None if isinstance(v, float) and np.isnan(v) and k == "months" else v)
                for k, v in rec.items()
            }
        )
    return out


def _rowwise(fn: Any, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray([fn(r) for r in _records(frame[FEATURES])], dtype=float)


def _fit(estimator: Any, target: str) -> tuple[Any, pd.DataFrame]:
    from sklearn.pipeline import Pipeline

    train, test = _data(1, 600), _data(2, 300)
    model = Pipeline([("transform", _transform()), ("model", estimator)])
    model.fit(train[FEATURES], train[target])
    return model, test


@pytest.mark.parametrize("target", ["binary", "klass"])
def test_boosted_trees_classify_row_by_row_as_in_batch(target: str) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model, test = _fit(HistGradientBoostingClassifier(max_iter=60, max_depth=5), target)
    fn = compile_row(model, FEATURES, "classification")
    want = model.predict_proba(test[FEATURES])
    got = _rowwise(fn, test)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    labels = model.classes_[got.argmax(axis=1)]
    assert (labels == model.predict(test[FEATURES])).all()
    assert want.shape[1] == (2 if target == "binary" else 3)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_boosted_trees_regress_row_by_row_as_in_batch(loss: str) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    model, test = _fit(HistGradientBoostingRegressor(max_iter=40, loss=loss), "amount")
    fn = compile_row(model, FEATURES, "regression")
    np.testing.assert_allclose(
        _rowwise(fn, test), model.predict(test[FEATURES]), rtol=1e-12, atol=1e-9
    )


def test_other_estimators_are_called_on_the_compiled_features() -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    forest = RandomForestClassifier(20, random_state=0)
    for estimator in (LogisticRegression(max_iter=2000), forest):
        model, test = _fit(estimator, "klass")
        fn = compile_row(model, FEATURES, "classification")
        np.testing.assert_allclose(
            _rowwise(fn, test), model.predict_proba(test[FEATURES]), rtol=0, atol=1e-9
        )


def test_an_unknown_transform_is_called_as_the_batch_path_calls_it() -> None:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import KBinsDiscretizer

    model = Pipeline([("transform", _transform()), ("model", Ridge())])
    model.named_steps["transform"].named_steps["columns"].transformers.append(
        (
            "bins",
            KBinsDiscretizer(n_bins=4, encode="ordinal", quantile_method="averaged_inverted_cdf"),
            ["debt"],
        )
    )
    train, test = _data(1, 600), _data(2, 300)
    model.fit(train[FEATURES], train["amount"])
    fn = compile_row(model, FEATURES, "regression")
    np.testing.assert_allclose(
        _rowwise(fn, test), model.predict(test[FEATURES]), rtol=1e-12, atol=1e-9
    )


@pytest.mark.parametrize("sensitive", [["sex"], ["sex", "region"]])
def test_the_threshold_rule_gives_fairlearns_probabilities(sensitive: list[str]) -> None:
    from fairlearn.postprocessing import ThresholdOptimizer
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlc.runtime.steps.fairness import MitigatedModel

    base, test = _fit(HistGradientBoostingClassifier(max_iter=40), "binary")
    train = _data(3, 600)
    rule = ThresholdOptimizer(
        estimator=base, constraints="demographic_parity", prefit=True, predict_method="auto"
    )
    rule.fit(train[FEATURES], train["binary"], sensitive_features=train[sensitive])
    model = MitigatedModel("threshold_optimizer", sensitive, base.classes_, mitigator=rule)
    fn = compile_row(model, FEATURES, "classification")
    want = model.predict_proba(test[FEATURES])
    got = _rowwise(fn, test)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert 0.0 < want[:, 1].mean() < 1.0  # the rule is not constant on this data


def test_what_has_no_row_form_says_so() -> None:
    from sklearn.linear_model import LogisticRegression

    from mlc.runtime.steps.fairness import MitigatedModel

    with pytest.raises(Unsupported, match="LogisticRegression model"):
        compile_row(LogisticRegression(), FEATURES, "classification")
    reduction = MitigatedModel("exponentiated_gradient", ["sex"], [0, 1], predictors=[], weights=[])
    with pytest.raises(Unsupported, match="reduction"):
        compile_row(reduction, FEATURES, "classification")


def test_the_trained_pipeline_answers_one_row_calls_through_its_row_path() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    from mlc.runtime.steps._transforms import RowPipeline

    train, test = _data(1, 600), _data(2, 60)
    for estimator, target in (
        (HistGradientBoostingClassifier(max_iter=30), "klass"),
        (HistGradientBoostingRegressor(max_iter=30), "amount"),
    ):
        model = RowPipeline([("transform", _transform()), ("model", estimator)])
        model.fit(train[FEATURES], train[target])
        saved = artifacts.dump_object(model)  # the bytes the model's hash is taken of
        whole = Pipeline.predict(model, test[FEATURES])
        each = np.concatenate([model.predict(test[FEATURES].iloc[[i]]) for i in range(60)])
        np.testing.assert_allclose(each, whole, rtol=0, atol=1e-9)
        if target == "klass":
            assert (each == whole).all()
            proba = np.vstack([model.predict_proba(test[FEATURES].iloc[[i]]) for i in range(60)])
            np.testing.assert_allclose(proba, Pipeline.predict_proba(model, test[FEATURES]))
        # the one-row calls went through a compiled scorer, which is never saved with the model
        assert any(fn is not None for fn in model.__dict__["_mlc_rows"].values())
        assert artifacts.dump_object(model) == saved
        # a regressor has no predict_proba, as its Pipeline has none
        assert hasattr(model, "predict_proba") == (target == "klass")


def test_the_mitigated_model_answers_one_row_calls_through_the_threshold_rule() -> None:
    from fairlearn.postprocessing import ThresholdOptimizer
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlc.runtime.steps.fairness import MitigatedModel

    base, test = _fit(HistGradientBoostingClassifier(max_iter=30), "binary")
    train = _data(3, 600)
    rule = ThresholdOptimizer(estimator=base, constraints="demographic_parity", prefit=True)
    rule.fit(train[FEATURES], train["binary"], sensitive_features=train[["sex"]])
    model = MitigatedModel("threshold_optimizer", ["sex"], base.classes_, mitigator=rule)
    saved = artifacts.dump_object(model)
    whole = model.predict_proba(test[FEATURES])
    first = [model.predict(test[FEATURES].iloc[[i]])[0] for i in range(40)]
    each = np.vstack([model.predict_proba(test[FEATURES].iloc[[i]]) for i in range(40)])
    np.testing.assert_allclose(each, whole[:40], rtol=0, atol=1e-9)
    # a one-row call is row 0 of its input: the first draw, as fairlearn's predict gives it
    draw = np.random.RandomState(0).random_sample(1)[0]
    assert first == [model.classes_[int(p >= draw)] for p in whole[:40, 1]]
    assert "_mlc_rows" in model.__dict__ and "_mlc_rows" not in model.__getstate__()
    assert artifacts.dump_object(model) == saved
