"""`mlc init --template NAME`: a starter per framework that validates as written, and whose
module (a LightningModule, a Keras builder) meets the interface the train step checks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlc.compiler.api import check
from mlc.compiler.diagnostics import DiagnosticError
from mlc.compiler.ir.model import StepKind
from mlc.compiler.scaffold import TEMPLATES, scaffold

EXPECTED = {
    "sklearn": ("sklearn", "LogisticRegression"),
    "xgboost": ("xgboost", "XGBClassifier"),
    "lightgbm": ("lightgbm", "LGBMClassifier"),
    "lightning": ("lightning", "tabular_mlp"),
    "lightning-module": ("lightning", "churn_net"),
    "keras": ("keras", "tabular_mlp"),
}


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_validates_and_trains_its_framework(template: str, tmp_path: Path) -> None:
    assert set(TEMPLATES) == set(EXPECTED)
    project = tmp_path / "proj"
    scaffold(project, template=template)
    train = check(project / "mlc.yaml", ()).ir.first(StepKind.TRAIN)
    framework, model = EXPECTED[template]
    assert train.params["framework"] == framework
    assert train.params["model"]["name"] == model
    if "early_stopping" in (project / "mlc.yaml").read_text():
        assert "validation" in train.inputs  # early stopping has its validation rows


def test_the_module_templates_meet_the_train_steps_interface(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlc.runtime.frameworks.lightning_module import has_validation_step, load_class

    project = tmp_path / "proj"
    scaffold(project, template="lightning-module")
    monkeypatch.syspath_prepend(str(project))
    cls = load_class("models.net:ChurnNet")
    assert has_validation_step(cls)
    keras_project = tmp_path / "kproj"
    scaffold(keras_project, template="keras")
    from mlc.runtime.frameworks.keras_model import keras_module

    keras = keras_module("torch")  # the template's backend
    monkeypatch.syspath_prepend(str(keras_project))
    monkeypatch.delitem(sys.modules, "models", raising=False)  # the other template's package
    monkeypatch.delitem(sys.modules, "models.net", raising=False)
    from models.keras_model import build_model  # type: ignore[import-not-found]

    model = build_model(5, {"width": 4})
    assert isinstance(model, keras.Model) and model.output_shape == (None, 2)


def test_an_unknown_template_is_refused_with_the_closest_name(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as err:
        scaffold(tmp_path / "p", template="xgbost")
    diagnostic = err.value.diagnostics[0]
    assert diagnostic.code == "MLC042" and "'xgboost'" in (diagnostic.hint or "")
    assert not (tmp_path / "p").exists()
