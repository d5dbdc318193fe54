"""A user LightningModule for the diabetes example (`framework/lightning_module.yaml`).

mlc calls `Regressor(input_dim, output_dim, params)` and trains it on `(x, y)` batches already on
the module's device: float32 features and float32 targets.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn


class Regressor(L.LightningModule):
    def __init__(self, input_dim: int, output_dim: int, params: dict[str, Any]) -> None:
        super().__init__()
        width = int(params.get("width", 64))
        self.net = nn.Sequential(
            nn.Linear(input_dim, width), nn.ReLU(), nn.Linear(width, output_dim)
        )
        self.learning_rate = float(params.get("learning_rate", 1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x).squeeze(-1)
        return out

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y), batch_size=len(y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)
