"""GPU training throughput: a plain torch loop vs mlc's Lightning path, same MLP and data.

All paths train `make_net(32, 2)` (3 linear layers) with Adam on 2M x 32 float rows held on the
GPU, batch 4096, batched by index slicing. The Lightning path is
`mlc.runtime.lightning_mlp.fit_mlp` (the code `framework: lightning` runs). Standalone: needs
only torch and Lightning; the module is loaded by file path, so mlc need not be installed.

    python benchmarks/bench_gpu_training.py [--rows 2000000] [--epochs 5] [--runs 3]
        [--before OLD/lightning_mlp.py]

Paths, run interleaved: `plain_torch_gpu_resident` (the baseline: default Adam, which is the
multi-tensor `foreach` kernels on CUDA), `plain_torch_gpu_resident_fused` (the same loop with
the fused Adam kernel mlc's path uses, so the ratio against it isolates Lightning's cost),
`mlc_lightning` (as shipped), `mlc_lightning_1_step_per_call` (one optimizer step per Lightning
call) and, with `--before`, `before` (another version of the module, e.g. from git).

Prints one JSON line per path with samples/s, medians over runs: `whole_fit` (Trainer set-up
included) and `steady_epoch` (median epoch after the first), the final loss (the plain loop's last
batch, mlc's last epoch mean: a sanity check that all paths train), and
the ratios of mlc's path over each baseline; goal >= 0.9.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _load_mlp(
    path: Path = HERE.parent / "runtime" / "lightning_mlp.py", name: str = "mlc_lightning_mlp"
):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(
    mlp, x, y, epochs: int, batch: int, device: torch.device, fused: bool = False
) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The baseline: the same net, data on the device, batches cut by index slicing."""
    torch.manual_seed(0)
    net = mlp.make_net(x.shape[1], 2).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=fused or None)
    n = x.shape[0]
    epoch_s = []
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(n, device=device)
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        epoch_s.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    # The last batch's loss only: the baseline does no per-step work beyond the step itself
    # (mlc's path sums the epoch's losses on the device, one extra add per step).
    return _rates(n, epochs, total, epoch_s, float(loss))


def _rates(
    n: int, epochs: int, total: float, epoch_s: list[float], loss: float
) -> dict[str, float]:
    # Steady state leaves out the first epoch (allocator warm-up, Lightning's loop start).
    steady = epoch_s[1:] or epoch_s
    return {
        "whole_fit": n * epochs / total,
        "steady_epoch": n / statistics.median(steady),
        "final_loss": loss,
    }


def lightning_path(
    mlp, x, y, epochs: int, batch: int, device: torch.device, **options
) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """mlc's path: `fit_mlp` (Trainer + TabularMLP + DeviceBatches), the whole fit timed."""
    import lightning as L

    epoch_s: list[float] = []

    class EpochTimer(L.Callback):  # type: ignore[misc]
        def on_train_epoch_start(self, trainer, module) -> None:  # type: ignore[no-untyped-def]
            _sync(device)
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module) -> None:  # type: ignore[no-untyped-def]
            _sync(device)
            epoch_s.append(time.perf_counter() - self.t0)

    accelerator = "gpu" if device.type == "cuda" else "cpu"
    _sync(device)
    start = time.perf_counter()
    module, _ = mlp.fit_mlp(
        x,
        y,
        task="classification",
        out_features=2,
        batch_size=batch,
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        seed=0,
        callbacks=[EpochTimer()],
        **options,
    )
    _sync(device)
    total = time.perf_counter() - start
    return _rates(x.shape[0], epochs, total, epoch_s, module.epoch_loss)


def check_precisions(mlp, device: torch.device) -> None:  # type: ignore[no-untyped-def]
    """Each precision the spec may name trains through mlc's path on this device."""
    gen = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(100_000, 32, generator=gen)
    y = (x[:, 0] - x[:, 1] > 0).long()
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    for precision in ("32-true", "16-mixed", "bf16-mixed"):
        if precision == "16-mixed" and device.type != "cuda":
            continue
        module, trainer = mlp.fit_mlp(
            x, y, batch_size=4096, max_epochs=3, accelerator=accelerator, devices=1,
            precision=precision,
        )  # fmt: skip
        optimizer = trainer.optimizers[0]
        print(
            json.dumps(
                {
                    "precision_check": precision,
                    "global_step": trainer.global_step,
                    "expected_steps": 3 * math.ceil(x.shape[0] / 4096),
                    "epoch_loss": round(module.epoch_loss, 4),
                    "param_device": str(next(module.parameters()).device),
                    "fused_adam": bool(optimizer.defaults.get("fused")),
                }
            )
        )


def check_estimator(mlp, device: torch.device) -> None:  # type: ignore[no-untyped-def]
    """`MLPEstimator` trained on this device pickles to plain arrays and predicts on the CPU."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(2)
    x = rng.normal(size=(50_000, 32)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    est = mlp.MLPEstimator(batch_size=4096, max_epochs=3, accelerator=accelerator, devices=1)
    est.fit(x, y)
    blob = pickle.dumps(est)
    again = pickle.loads(blob)
    print(
        json.dumps(
            {
                "estimator_check": accelerator,
                "epochs": est.epochs_,
                "accuracy": round(float((again.predict(x) == y).mean()), 4),
                "same_predictions": bool(np.array_equal(again.predict(x), est.predict(x))),
                "pickle_has_torch": b"torch" in blob,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another lightning_mlp.py to time beside")
    parser.add_argument(
        "--check-precisions",
        action="store_true",
        help="first fit briefly at each precision (steps, loss, optimizer kind) and check that "
        "a fitted MLPEstimator pickles without torch objects",
    )
    args = parser.parse_args()
    mlp = _load_mlp()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.check_precisions:
        check_precisions(mlp, device)
        check_estimator(mlp, device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(args.rows, args.features, generator=gen).to(device)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    paths: dict[str, Callable[..., dict[str, float]]] = {
        "plain_torch_gpu_resident": functools.partial(plain_loop, mlp),
        "plain_torch_gpu_resident_fused": functools.partial(plain_loop, mlp, fused=True),
        "mlc_lightning": functools.partial(lightning_path, mlp),
        "mlc_lightning_1_step_per_call": functools.partial(lightning_path, mlp, steps_per_call=1),
    }
    if args.before:
        paths["before"] = functools.partial(lightning_path, _load_mlp(args.before, "before_mlp"))
    # Warm-up: CUDA context, kernels and Lightning's first-fit imports are not measured.
    for fn in paths.values():
        fn(x[:50_000], y[:50_000], 1, args.batch, device)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    for _ in range(args.runs):
        for name, fn in paths.items():  # interleaved, so drift in clocks hits all alike
            results[name].append(fn(x, y, args.epochs, args.batch, device))
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    medians = {}
    for path, runs in results.items():
        medians[path] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            json.dumps(
                {
                    "path": path,
                    "device": name,
                    "rows": args.rows,
                    "features": args.features,
                    "batch": args.batch,
                    "epochs": args.epochs,
                    "runs": args.runs,
                    "samples_per_s_median": {
                        k: round(medians[path][k]) for k in ("whole_fit", "steady_epoch")
                    },
                    "final_loss_median": round(medians[path]["final_loss"], 4),
                }
            )
        )
    ratios = {
        f"{path}_over_{base}": {
            k: round(medians[path][k] / medians[base][k], 3) for k in ("whole_fit", "steady_epoch")
        }
        for path in medians
        if not path.startswith("plain")
        for base in ("plain_torch_gpu_resident", "plain_torch_gpu_resident_fused")
    }
    import lightning

    versions = {"torch": torch.__version__, "lightning": lightning.__version__}
    print(json.dumps({"ratios": ratios, "goal": 0.9, **versions}))


if __name__ == "__main__":
    main()
