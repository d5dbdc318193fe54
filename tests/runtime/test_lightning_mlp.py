"""The Lightning MLP's training loop: batching on the device, steps per call, precision."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mlc.runtime.lightning_mlp import DeviceBatches, MLPEstimator, fit_mlp, launch_plan


def _separable(rows: int = 600, features: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def test_device_batches_cover_every_row_once_per_epoch() -> None:
    x = torch.arange(103, dtype=torch.float32).unsqueeze(1)
    batches = DeviceBatches(x, torch.arange(103), 10, seed=3)
    assert len(batches) == 11
    for _ in range(2):
        seen = torch.cat([xb[:, 0] for xb, _ in batches]).long()
        assert sorted(seen.tolist()) == list(range(103))
    # Rows and labels stay paired through the shuffle.
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in batches)


def test_device_batches_give_every_rank_the_same_number_of_batches() -> None:
    # 50 rows over 3 ranks, batch 8: unpadded, rank 0 would get 17 rows (3 batches) and the
    # others 16 (2 batches), and DDP's all-reduce would wait on rank 0's third step forever.
    x = torch.arange(50, dtype=torch.float32).unsqueeze(1)
    y = torch.arange(50)
    ranks = [DeviceBatches(x, y, 8, seed=1, rank=r, world_size=3) for r in range(3)]
    per_rank = [torch.cat([yb for _, yb in batches]) for batches in ranks]
    assert [len(b) for b in ranks] == [3, 3, 3]
    assert [len(list(b)) for b in ranks] == [3, 3, 3]
    assert [len(rows) for rows in per_rank] == [17, 17, 17]
    seen = torch.cat(per_rank).tolist()
    assert set(seen) == set(range(50)) and len(seen) == 51  # one row repeated as padding


@pytest.mark.parametrize("steps_per_call", [1, 3, 8])
def test_every_batch_is_one_optimizer_step(steps_per_call: int) -> None:
    x, y = _separable(rows=600)
    module, trainer = fit_mlp(
        x,
        y,
        batch_size=64,  # 10 batches: not a multiple of 3 or 8, so a call ends short
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        steps_per_call=steps_per_call,
    )
    assert trainer.num_training_batches == 10
    assert trainer.current_epoch == 3
    assert trainer.global_step == 30
    assert np.isfinite(module.epoch_loss)


def test_steps_per_call_does_not_change_what_is_learned() -> None:
    x, y = _separable(rows=300)
    weights = []
    for steps_per_call in (1, 4):
        module, _ = fit_mlp(
            x,
            y,
            batch_size=32,
            max_epochs=2,
            accelerator="cpu",
            devices=1,
            seed=5,
            steps_per_call=steps_per_call,
        )
        weights.append([p.detach().clone() for p in module.parameters()])
    for a, b in zip(*weights, strict=True):
        assert torch.equal(a, b)


def test_estimator_learns_and_pickles_with_cpu_weights() -> None:
    x, y = _separable(rows=800)
    est = MLPEstimator(batch_size=64, max_epochs=20, accelerator="cpu", devices=1)
    est.fit(x, y)
    assert est.stopped_ == "max_epochs" and est.epochs_ == 20
    assert (est.predict(x) == y).mean() > 0.95
    proba = est.predict_proba(x[:5])
    assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    again = pickle.loads(pickle.dumps(est))
    assert np.array_equal(again.predict(x), est.predict(x))
    assert all(p.device.type == "cpu" for p in again.module_.parameters())


def test_estimator_saves_with_skops_as_the_registry_does() -> None:
    # skops refuses torch tensors; the registry saves pipelines with it.
    import skops.io

    x, y = _separable(rows=300)
    est = MLPEstimator(batch_size=64, max_epochs=3, accelerator="cpu").fit(x, y)
    data = skops.io.dumps(est)
    untrusted = skops.io.get_untrusted_types(data=data)
    assert untrusted == ["mlc.runtime.lightning_mlp.MLPEstimator"]
    again = skops.io.loads(data, trusted=untrusted)
    assert np.array_equal(again.predict_proba(x), est.predict_proba(x))


def test_mixed_precision_goes_through_lightnings_plugin() -> None:
    x, y = _separable(rows=400)
    module, trainer = fit_mlp(
        x, y, batch_size=50, max_epochs=2, accelerator="cpu", devices=1, precision="bf16-mixed"
    )
    assert trainer.global_step == 16
    assert np.isfinite(module.epoch_loss)
    assert all(p.dtype == torch.float32 for p in module.parameters())


def test_regression_task_fits() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    y = (2 * x[:, 0] - x[:, 2]).astype(np.float32)
    est = MLPEstimator(task="regression", batch_size=50, max_epochs=30, accelerator="cpu")
    est.fit(x, y)
    residual = est.predict(x) - y
    assert float(np.mean(residual**2)) < 0.1 * float(np.var(y))


@pytest.mark.parametrize(
    ("strategy", "devices", "plan"),
    [
        ("none", "auto", ("auto", 1)),  # one device, however many the machine has
        ("none", 1, ("auto", 1)),
        ("none", 2, ("ddp_spawn", 2)),
        ("ddp", 2, ("ddp_spawn", 2)),
        ("ddp", 1, ("auto", 1)),
        ("ddp", "auto", ("auto", "auto")),  # no GPU here: one CPU device
        ("fsdp", 1, ("fsdp", 1)),
    ],
)
def test_launch_plan_never_relaunches_the_command(
    strategy: str, devices: int | str, plan: tuple[str, int | str]
) -> None:
    assert launch_plan(strategy, devices, "cpu") == plan


def test_launch_plan_refuses_multi_device_strategies_without_a_spawned_form() -> None:
    with pytest.raises(ValueError, match=r"strategy 'fsdp' on 2 devices .* use strategy 'ddp'"):
        launch_plan("fsdp", 2, "cpu")


def test_ddp_trains_in_spawned_workers_and_hands_back_rank_zero() -> None:
    # Two CPU workers over gloo. The step process itself trains nothing: the weights, the
    # epoch count and the all-reduced loss come back from the workers.
    x, y = _separable(rows=640)
    est = MLPEstimator(batch_size=64, max_epochs=3, accelerator="cpu", devices=2, strategy="ddp")
    est.fit(x, y)
    assert est.epochs_ == 3 and est.stopped_ == "max_epochs"
    assert np.isfinite(est.final_loss_) and est.final_loss_ < 0.69  # below chance level
    assert (est.predict(x) == y).mean() > 0.9


def test_train_step_names_the_distributed_setting_it_cannot_run() -> None:
    from support.runtime import complete

    from mlc.runtime.context import StepError
    from mlc.runtime.steps.train import make_estimator

    train = complete("train", {})
    params = {
        **train,
        "framework": "lightning",
        "model": {"name": "tabular_mlp", "params": {}},
        "lightning": {**train["lightning"], "accelerator": "cpu"},
        "distributed": {"strategy": "fsdp", "devices": 2},
    }
    with pytest.raises(StepError) as err:
        make_estimator(params, {})
    assert "strategy 'fsdp' on 2 devices" in str(err.value)
    assert "training.distributed" in err.value.hint


def _noisy(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=rows) > 0).astype(np.int64)
    return x, y


def test_early_stopping_stops_on_validation_loss_and_keeps_the_best_weights() -> None:
    x, y = _noisy(600, 0)
    xv, yv = _noisy(300, 1)
    est = MLPEstimator(
        batch_size=32, max_epochs=300, learning_rate=0.02, accelerator="cpu",
        early_stopping_patience=3,
    )  # fmt: skip
    est.fit(x, y, validation=(xv, yv))
    assert est.stopped_ == "early_stopping" and est.epochs_ < 300
    # The weights kept score the reported (best) validation loss, not the last epoch's.
    logits = torch.as_tensor(est._forward(xv))
    kept = torch.nn.functional.cross_entropy(logits, torch.as_tensor(yv)).item()
    assert kept == pytest.approx(est.val_loss_, rel=1e-4)


def test_patience_without_validation_rows_trains_every_epoch() -> None:
    # Tuning's cross-validation folds fit without validation rows: the patience is not used.
    x, y = _noisy(300, 2)
    est = MLPEstimator(batch_size=64, max_epochs=4, accelerator="cpu", early_stopping_patience=1)
    est.fit(x, y)
    assert est.epochs_ == 4 and est.stopped_ == "max_epochs" and est.val_loss_ is None
    with pytest.raises(ValueError, match="needs validation rows"):
        fit_mlp(x, y, max_epochs=1, accelerator="cpu", early_stopping={"patience": 1})


def test_validation_labels_unseen_in_training_are_dropped() -> None:
    x, y = _noisy(200, 3)
    est = MLPEstimator(batch_size=64, max_epochs=2, accelerator="cpu")
    xv, yv = _noisy(50, 4)
    yv[:10] = 7  # a class the head has no output for
    est.fit(x, y, validation=(xv, yv))
    assert est.val_loss_ is not None and np.isfinite(est.val_loss_)


def test_train_step_refuses_early_stopping_on_an_empty_validation_split(tmp_path: Path) -> None:
    import pandas as pd

    from mlc.runtime import artifacts
    from mlc.runtime.context import StepError
    from mlc.runtime.steps.train import _validation_rows

    folder = str(tmp_path / "validation")
    artifacts.save_dataframe(folder, pd.DataFrame({"a": [], "y": []}))
    params = {
        "framework": "lightning",
        "target": "y",
        "lightning": {"early_stopping": {"patience": 2}},
    }
    with pytest.raises(StepError, match="validation split is empty"):
        _validation_rows(params, {"validation": folder})
    assert _validation_rows({**params, "framework": "sklearn"}, {"validation": folder}) is None
