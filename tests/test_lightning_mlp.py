"""The Lightning MLP's training loop: batching on the device, steps per call, precision."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from mlc.runtime.lightning_mlp import DeviceBatches, MLPEstimator, fit_mlp


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
