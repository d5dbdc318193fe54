"""GPU training throughput: a plain torch loop vs mlc's Lightning path, same MLP and data.

Both train `make_net(32, 2)` (3 linear layers) with Adam on 2M x 32 float rows held on the GPU,
batch 4096, batched by index slicing. The Lightning path is `mlc.runtime.lightning_mlp.fit_mlp`
(the code `framework: lightning` runs). Standalone: needs only torch and Lightning; the module
is loaded by file path, so mlc need not be installed.

    python benchmarks/bench_gpu_training.py [--rows 2000000] [--epochs 3] [--runs 3]

Prints one JSON line per path with samples/s, medians over runs: `whole_fit` (Trainer set-up
included) and `steady_epoch` (median epoch after the first), and the ratios; goal >= 0.9.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _load_mlp():  # type: ignore[no-untyped-def]
    path = HERE.parent / "runtime" / "lightning_mlp.py"
    spec = importlib.util.spec_from_file_location("mlc_lightning_mlp", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(mlp, x, y, epochs: int, batch: int, device: torch.device) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The baseline: the same net, data on the device, batches cut by index slicing."""
    torch.manual_seed(0)
    net = mlp.make_net(x.shape[1], 2).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
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
    return _rates(n, epochs, total, epoch_s)


def _rates(n: int, epochs: int, total: float, epoch_s: list[float]) -> dict[str, float]:
    # Steady state leaves out the first epoch (allocator warm-up, Lightning's loop start).
    steady = epoch_s[1:] or epoch_s
    return {"whole_fit": n * epochs / total, "steady_epoch": n / statistics.median(steady)}


def lightning_path(mlp, x, y, epochs: int, batch: int, device: torch.device) -> dict[str, float]:  # type: ignore[no-untyped-def]
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
    mlp.fit_mlp(
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
    )
    _sync(device)
    return _rates(x.shape[0], epochs, time.perf_counter() - start, epoch_s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    mlp = _load_mlp()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(args.rows, args.features, generator=gen).to(device)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    # Warm-up: CUDA context, kernels and Lightning's first-fit imports are not measured.
    plain_loop(mlp, x[:50_000], y[:50_000], 1, args.batch, device)
    lightning_path(mlp, x[:50_000], y[:50_000], 1, args.batch, device)
    paths = {"plain_torch_gpu_resident": plain_loop, "mlc_lightning": lightning_path}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    for _ in range(args.runs):
        for name, fn in paths.items():  # interleaved, so drift in clocks hits both alike
            results[name].append(fn(mlp, x, y, args.epochs, args.batch, device))
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
                    "samples_per_s_median": {k: round(v) for k, v in medians[path].items()},
                }
            )
        )
    ratio = {
        k: round(medians["mlc_lightning"][k] / medians["plain_torch_gpu_resident"][k], 3)
        for k in medians["mlc_lightning"]
    }
    print(
        json.dumps({"ratio_lightning_over_plain": ratio, "goal": 0.9, "torch": torch.__version__})
    )


if __name__ == "__main__":
    main()
