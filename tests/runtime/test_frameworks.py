"""XGBoost, LightGBM, Keras and user Lightning modules through the train and tune steps.

The models train on the diabetes example (through its framework overlays) or on small
credit-shaped frames; answers are checked against the libraries called directly.
"""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from support import DIABETES
from support.credit_like import frame as credit_frame
from support.runtime import complete, ir_of, run_pipeline

from mlc.compiler.ir.model import StepKind
from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps.register import _own_types, pip_requirements
from mlc.runtime.steps.train import make_estimator

pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")


def _ctx(tmp_path: Path, name: str) -> StepContext:
    return StepContext(
        run_id=name, project_dir=DIABETES.parent.resolve(), state_dir=tmp_path / "state"
    )


def _train(tmp_path: Path, *overrides: str) -> tuple[dict[str, Any], Any, Path]:
    """Run the diabetes pipeline up to `train`; the summary, the IR and the artifact root."""
    ir = ir_of(DIABETES, overrides)
    root = tmp_path / "a"
    summary = run_pipeline(ir, root, _ctx(tmp_path, "fw"), until="train")["train"]
    return summary, ir, root


def _matrices(ir: Any, root: Path) -> tuple[Any, ...]:
    """The transformed train and validation rows, as the train step fitted on them."""
    from mlc.runtime.steps._data import load_frame, split_xy

    train = ir.first(StepKind.TRAIN)
    target = train.params["target"]
    inputs = {n: str(root / a) for n, a in train.inputs.items()}
    x, y = split_xy(load_frame(inputs, "train", "t"), target, "t")
    xv, yv = split_xy(load_frame(inputs, "validation", "t"), target, "t")
    pipe = artifacts.load_object(str(root / train.outputs["model"]))
    transform = pipe.steps[0][1]
    return pipe, transform.transform(x), y, transform.transform(xv), yv, x


# -- XGBoost and LightGBM ---------------------------------------------------------------------


def test_overlay_replaces_the_base_model_and_its_params() -> None:
    # the diabetes spec's tabular_mlp params (`hidden`) mean nothing to XGBoost
    train = ir_of(DIABETES, ("+framework=xgboost",)).first(StepKind.TRAIN)
    assert train.params["framework"] == "xgboost"
    assert train.params["model"]["name"] == "XGBRegressor"
    assert "hidden" not in train.params["model"]["params"]
    assert train.params["boost"]["early_stopping"] == {"patience": 20, "min_delta": 0.0}


def test_xgboost_early_stops_on_the_validation_split_like_xgboost_itself(tmp_path: Path) -> None:
    import xgboost

    summary, ir, root = _train(tmp_path, "+framework=xgboost")
    pipe, x, y, xv, yv, _ = _matrices(ir, root)
    # independently: XGBoost's own early stopping on the same matrices and parameters
    params = ir.first(StepKind.TRAIN).params["model"]["params"]
    direct = xgboost.XGBRegressor(**params, random_state=7, early_stopping_rounds=20)
    direct.fit(x, y, eval_set=[(xv, yv)], verbose=False)
    assert summary["rounds"] == direct.best_iteration + 1 < params["n_estimators"]
    ours = pipe.steps[-1][1]
    expected = direct.predict(xv, iteration_range=(0, direct.best_iteration + 1))
    np.testing.assert_allclose(ours.predict(xv), expected, rtol=1e-5)


def test_lightgbm_early_stops_on_the_validation_split_like_lightgbm_itself(
    tmp_path: Path,
) -> None:
    import lightgbm

    summary, ir, root = _train(tmp_path, "+framework=lightgbm")
    pipe, x, y, xv, yv, _ = _matrices(ir, root)
    params = ir.first(StepKind.TRAIN).params["model"]["params"]
    direct = lightgbm.LGBMRegressor(**params, random_state=7, verbose=-1)
    stop = [lightgbm.early_stopping(20, verbose=False)]
    direct.fit(x, y, eval_X=(xv,), eval_y=(yv,), callbacks=stop)
    assert summary["best_iteration"] == direct.best_iteration_ < params["n_estimators"]
    np.testing.assert_allclose(pipe.steps[-1][1].predict(xv), direct.predict(xv), rtol=1e-6)


def test_the_saved_boosted_pipeline_reloads_with_skops_and_names_its_requirements(
    tmp_path: Path,
) -> None:
    from importlib.metadata import version

    _, ir, root = _train(tmp_path, "+framework=xgboost")
    pipe, *_, x_raw = _matrices(ir, root)
    own = _own_types(pipe)
    loaded = skops.io.loads(skops.io.dumps(pipe), trusted=own)
    np.testing.assert_array_equal(loaded.predict(x_raw), pipe.predict(x_raw))
    assert f"xgboost=={version('xgboost')}" in pip_requirements(own)
    assert not any(r.startswith("lightgbm") for r in pip_requirements(own))


def _params(framework: str, name: str | None, params: dict[str, Any]) -> dict[str, Any]:
    model = None if name is None else {"name": name, "params": params}
    return complete("train", {"framework": framework, "model": model, "task": "classification"})


@pytest.mark.parametrize(
    ("framework", "name", "bad", "close"),
    [
        ("xgboost", "XGBClassifier", "max_dpth", "max_depth"),
        ("xgboost", "XGBClassifier", "colsample_bylevl", "colsample_bylevel"),
        ("lightgbm", "LGBMClassifier", "num_leafs", "num_leaves"),
        ("lightgbm", "LGBMClassifier", "min_data_in_lef", "min_data_in_leaf"),
    ],
)
def test_an_unknown_parameter_is_named_with_the_closest_ones(
    framework: str, name: str, bad: str, close: str
) -> None:
    with pytest.raises(StepError) as err:
        make_estimator(_params(framework, name, {bad: 3}), {bad: 3})
    assert bad in str(err.value) and f"'{close}'" in (err.value.hint or "")


def test_parameters_the_library_knows_through_kwargs_are_accepted() -> None:
    # `eta` and `lambda` are booster names, `min_data_in_leaf` a LightGBM alias: not in the
    # sklearn constructors, known to the libraries
    xgb = make_estimator(_params("xgboost", "XGBClassifier", {}), {"eta": 0.2, "lambda": 2.0})
    assert xgb.get_params()["eta"] == 0.2
    lgb = make_estimator(_params("lightgbm", None, {}), {"min_data_in_leaf": 5})
    assert type(lgb).__name__ == "LGBMClassifier" and lgb.get_params()["min_data_in_leaf"] == 5


def test_an_unknown_boosting_model_says_which_exist() -> None:
    with pytest.raises(StepError) as err:
        make_estimator(_params("xgboost", "XGBClasifier", {}), {})
    assert "'XGBClassifier'" in (err.value.hint or "")


def test_a_framework_that_is_not_installed_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # `import lightgbm` raises ImportError
    with pytest.raises(StepError) as err:
        make_estimator(_params("lightgbm", "LGBMClassifier", {}), {})
    assert "lightgbm" in str(err.value) and err.value.hint == "pip install 'mlc[boost]'"
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(StepError) as err:
        make_estimator(complete("train", {"framework": "keras", "model": None}), {})
    assert err.value.hint == "pip install 'mlc[keras]'"


def test_tuning_trials_early_stop_on_part_of_each_folds_training_rows(tmp_path: Path) -> None:
    tuning = (
        "+tuning={trials:2,cv_folds:2,objective:{metric:rmse},"
        "search_space:{max_depth:{type:int,low:2,high:4}}}"
    )
    ir = ir_of(DIABETES, ("+framework=xgboost", tuning))
    tune = ir.first(StepKind.TUNE)
    assert tune.params["boost"]["early_stopping"]["patience"] == 20
    summary = run_pipeline(ir, tmp_path / "a", _ctx(tmp_path, "tune"), until="tune")["tune"]
    assert summary["trials_complete"] == 2 and summary["trials_failed"] == 0
    assert 2 <= summary["best_params"]["max_depth"] <= 4


def test_fit_fold_stops_early_and_keeps_the_best_rounds() -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlc.runtime.frameworks.boost import fit_fold

    df = credit_frame(3, 600)
    x, y = df[["age", "income"]], df["default"]
    est = make_estimator(_params("xgboost", "XGBClassifier", {}), {"n_estimators": 500})
    pipe = Pipeline([("t", StandardScaler()), ("m", est)])
    fit_fold(pipe, x, y, "xgboost", {"patience": 5, "min_delta": 0.0}, seed=1)
    assert est.get_booster().num_boosted_rounds() < 500
    assert est.get_params()["callbacks"] is None  # nothing of the fit's history is kept
    assert pipe.predict_proba(x).shape == (600, 2)


# -- any sklearn-API estimator by dotted path -------------------------------------------------


def test_a_dotted_path_estimator_from_outside_sklearn_trains_under_framework_sklearn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightgbm

    pkg = tmp_path / "pkgs" / "tinyest"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from sklearn.base import BaseEstimator, ClassifierMixin

            class MeanThreshold(ClassifierMixin, BaseEstimator):
                def __init__(self, column=0):
                    self.column = column
                def fit(self, X, y):
                    X = np.asarray(X, dtype=float)
                    self.classes_ = np.unique(y)
                    self.cut_ = X[:, self.column].mean()
                    return self
                def predict(self, X):
                    return (np.asarray(X, dtype=float)[:, self.column] > self.cut_).astype(int)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    df = credit_frame(5, 400)
    x, y = df[["age", "income"]].to_numpy(dtype=float), df["default"]
    params = _params("sklearn", "lightgbm.LGBMClassifier", {})
    est = make_estimator(params, {"n_estimators": 20, "verbose": -1})
    assert isinstance(est, lightgbm.LGBMClassifier) and est.get_params()["random_state"] == 42
    est.fit(x, y)
    direct = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, random_state=42).fit(x, y)
    np.testing.assert_allclose(est.predict_proba(x), direct.predict_proba(x))
    tiny = make_estimator(_params("sklearn", "tinyest.MeanThreshold", {}), {"column": 1})
    tiny.fit(x, y)
    assert tiny.cut_ == pytest.approx(x[:, 1].mean())
    with pytest.raises(StepError, match="no parameter"):
        make_estimator(_params("sklearn", "tinyest.MeanThreshold", {}), {"colum": 1})


# -- user Lightning modules -------------------------------------------------------------------

MODULES = """
import lightning as L
import torch
from torch import nn


class Net(L.LightningModule):
    def __init__(self, input_dim, output_dim, params):
        super().__init__()
        width = params.get("width", 16)
        self.net = nn.Sequential(
            nn.Linear(input_dim, width), nn.ReLU(), nn.Linear(width, output_dim)
        )
        self.lr = params.get("lr", 0.05)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        assert x.dtype == torch.float32 and y.dtype == torch.long
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class NoValidation(Net):
    validation_step = L.LightningModule.validation_step


class Incomplete(L.LightningModule):
    def __init__(self, input_dim):
        super().__init__()


class Raises(Net):
    def __init__(self, input_dim, output_dim, params):
        raise ValueError("no width given")


def not_a_class(x):
    return x
"""


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "user"
    (root / "mymods").mkdir(parents=True)
    (root / "mymods" / "__init__.py").write_text("")
    (root / "mymods" / "nets.py").write_text(MODULES)
    monkeypatch.syspath_prepend(str(root))
    return root


def _lightning(module: str, early: bool = True) -> dict[str, Any]:
    base = complete("train", {"framework": "lightning", "task": "classification"})
    light = {
        **base["lightning"],
        "module": module,
        "max_epochs": 12,
        "batch_size": 128,
        "accelerator": "cpu",
        "early_stopping": {"patience": 2, "min_delta": 0.0} if early else None,
    }
    return {**base, "lightning": light, "distributed": {"strategy": "none", "devices": "auto"}}


def _blobs(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return x, y


def test_a_user_module_trains_early_stops_and_reloads_without_its_package(
    user_modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    est = make_estimator(_lightning("mymods.nets:Net"), {"width": 8})
    x, y = _blobs(0, 600)
    xv, yv = _blobs(1, 200)
    est.fit(x, y, validation=(xv, yv))
    assert est.stopped_ in ("early_stopping", "max_epochs") and est.val_loss_ is not None
    assert (est.predict(xv) == yv).mean() > 0.9
    # the kept weights are those of the lowest validation loss: recompute it independently
    import torch

    logits = torch.as_tensor(est._forward(xv))
    loss = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(yv)))
    assert loss == pytest.approx(est.val_loss_, rel=1e-4)
    # the registry's skops form loads where `mymods` cannot be imported (a serving image):
    # the class was saved by value with the weights
    blob = skops.io.dumps(est)
    sys.path.remove(str(user_modules))  # restored by the fixture's monkeypatch
    for name in ("mymods", "mymods.nets"):
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError):
        __import__("mymods.nets")
    loaded = skops.io.loads(blob, trusted=skops.io.get_untrusted_types(data=blob))
    np.testing.assert_array_equal(loaded.predict_proba(xv), est.predict_proba(xv))


def test_the_module_interface_is_checked_and_what_is_missing_named(user_modules: Path) -> None:
    with pytest.raises(StepError) as err:
        make_estimator(_lightning("mymods.nets:Incomplete"), {})
    text = str(err.value)
    for missing in ("forward", "training_step", "configure_optimizers", "__init__"):
        assert missing in text
    with pytest.raises(StepError, match="not a LightningModule"):
        make_estimator(_lightning("mymods.nets:not_a_class"), {})
    est = make_estimator(_lightning("mymods.nets:NoValidation"), {})
    with pytest.raises(StepError, match="no validation_step"):
        est.fit(*_blobs(0, 100), validation=_blobs(1, 50))
    est = make_estimator(_lightning("mymods.nets:Raises"), {})
    with pytest.raises(StepError, match="raised ValueError: no width given"):
        est.fit(*_blobs(0, 100))


def test_a_user_module_trains_like_the_builtin_under_tuning_clone(user_modules: Path) -> None:
    from sklearn.base import clone

    params = _lightning("mymods.nets:Net", early=False)
    params["lightning"]["max_epochs"] = 2
    est = make_estimator(params, {"width": 4})
    twin = clone(est)
    assert twin.get_params() == est.get_params() and twin.module_params == {"width": 4}
    x, y = _blobs(2, 300)
    a = pickle.loads(pickle.dumps(est.fit(x, y)))
    b = twin.fit(x, y)
    # the same seed and data give the same weights (the registry's rerun check relies on it)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))


# -- Keras ------------------------------------------------------------------------------------

BUILDERS = """
import keras


def build_model(input_dim, params):
    return keras.Sequential(
        [keras.Input((input_dim,)), keras.layers.Dense(params.get("width", 8), activation="relu"),
         keras.layers.Dense(2)]
    )


def softmax_model(input_dim, params):
    model = keras.Sequential(
        [keras.Input((input_dim,)), keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    return model


def wrong_type(input_dim, params):
    return {"layers": input_dim}


def raises(input_dim, params):
    raise RuntimeError("out of layers")


def wrong_width(input_dim, params):
    return keras.Sequential([keras.Input((input_dim,)), keras.layers.Dense(3)])
"""


@pytest.fixture
def builders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # keras picks its backend at its first import: torch, as the spec's default
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "torch"))
    pytest.importorskip("keras")
    root = tmp_path / "kb"
    root.mkdir()
    (root / "kbuild.py").write_text(BUILDERS)
    monkeypatch.syspath_prepend(str(root))


def _keras(builder: str | None, **options: Any) -> dict[str, Any]:
    base = complete("train", {"framework": "keras", "task": "classification", "model": None})
    keras_options = {
        "builder": builder,
        "backend": "torch",
        "epochs": 15,
        "batch_size": 64,
        "learning_rate": 0.02,
        "early_stopping": None,
        **options,
    }
    return {**base, "keras": keras_options}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras' torch backend, numpy 2
def test_a_keras_builder_model_trains_and_reloads_predicting_identically(builders: None) -> None:
    x, y = _blobs(3, 500)
    est = make_estimator(_keras("kbuild:build_model"), {"width": 8})
    est.fit(x, y)
    assert (est.predict(x) == y).mean() > 0.9
    loaded = skops.io.loads(skops.io.dumps(est), trusted=_own_types(est))
    np.testing.assert_array_equal(loaded.predict_proba(x), est.predict_proba(x))
    assert "keras==" in " ".join(pip_requirements(_own_types(est)))
    # a model the builder compiled with a softmax head gives its probabilities as they are
    soft = make_estimator(_keras("kbuild:softmax_model"), {}).fit(x, y)
    direct = np.asarray(soft.model_.predict(x, verbose=0))
    np.testing.assert_allclose(soft.predict_proba(x), direct, rtol=1e-6)


def test_the_builtin_keras_mlp_early_stops_on_validation(builders: None) -> None:
    x, y = _blobs(4, 400)
    xv, yv = _blobs(5, 200)
    early = {"patience": 2, "min_delta": 0.0}
    est = make_estimator(_keras(None, epochs=200, early_stopping=early), {"hidden": [8]})
    est.fit(x, y, validation=(xv, yv))
    assert est.stopped_ == "early_stopping" and est.epochs_ < 200
    with pytest.raises(StepError, match="no parameter"):
        make_estimator(_keras(None), {"hiden": [8]})


@pytest.mark.parametrize(
    ("builder", "message"),
    [
        ("kbuild:wrong_type", "returned dict"),
        ("kbuild:raises", "raised RuntimeError: out of layers"),
        ("kbuild:wrong_width", "output shape (None, 3)"),
    ],
)
def test_a_bad_builder_is_a_step_error_naming_it(
    builders: None, builder: str, message: str
) -> None:
    est = make_estimator(_keras(builder), {})
    with pytest.raises(StepError) as err:
        est.fit(*_blobs(0, 50))
    assert builder in str(err.value) and message in str(err.value)


def test_a_second_keras_backend_in_one_process_is_refused(builders: None) -> None:
    import keras

    from mlc.runtime.frameworks.keras_model import keras_module

    assert keras_module(keras.backend.backend()) is keras
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    with pytest.raises(StepError, match=f"asks for '{other}'"):
        keras_module(other)


def test_a_keras_backend_that_is_not_installed_names_what_installs_it(tmp_path: Path) -> None:
    """In a fresh process (Keras picks its backend at first import): tensorflow's absence is
    said as the backend's, not as keras missing. The process blocks the import, so the check
    holds whether or not tensorflow is installed."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['tensorflow'] = None\n"
        "from mlc.runtime.frameworks.keras_model import keras_module\n"
        "from mlc.runtime.context import StepError\n"
        "try:\n"
        "    keras_module('tensorflow')\n"
        "except StepError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert "keras backend 'tensorflow' needs the package 'tensorflow'" in out.stdout, out.stderr
    assert "pip install 'mlc[tensorflow]'" in out.stdout
