"""Adam's per-parameter step size lr / (sqrt(v_hat) + eps) logged during training, to see what a
warmup leaves in the second-moment estimate (docs/METHOD.md, trick 1, "Why warmup hurts here")."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch

QUANTILES = (0.1, 0.5, 0.9)
log = logging.getLogger("reidtricks")


def adam_step_sizes(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> torch.Tensor:
    """lr / (sqrt(v / (1 - beta2^t)) + eps) of every element of `params` that has Adam state."""
    sizes = []
    for group in optimizer.param_groups:
        beta2, eps, lr = group["betas"][1], group["eps"], group["lr"]
        ids = {id(p) for p in params}
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if id(param) not in ids or "exp_avg_sq" not in state:
                continue
            step = float(state["step"])
            v_hat = state["exp_avg_sq"].float() / (1 - beta2**step)
            sizes.append((lr / (v_hat.sqrt() + eps)).flatten())
    return torch.cat(sizes) if sizes else torch.empty(0)


class AdamStepSizeMonitor(pl.Callback):
    """Every `every_n_steps`, logs quantiles of Adam's step size for the backbone and the head
    (`adam/backbone_q50`, ...) on a fixed random sample of `sample` elements per part."""

    def __init__(self, every_n_steps: int = 8, sample: int = 200_000, seed: int = 0) -> None:
        self.every_n_steps, self.sample, self.seed = every_n_steps, sample, seed
        self._index: dict[str, torch.Tensor] = {}
        self._batches = 0  # training batches seen (not trainer.global_step, which counts every
        # optimiser's steps)

    def _parts(self, module: pl.LightningModule) -> dict[str, list[torch.Tensor]]:
        backbone = [p for p in module.net.backbone.parameters() if p.requires_grad]
        ids = {id(p) for p in backbone}
        head = [p for p in module.net.parameters() if p.requires_grad and id(p) not in ids]
        return {"backbone": backbone, "head": head}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        if not isinstance(optimizer, torch.optim.Adam):
            name = type(optimizer).__name__ if optimizer is not None else "none"
            log.warning(
                "callbacks=adam_monitor: the optimiser is %s, not Adam: no adam/* step sizes "
                "will be logged (use it with optim=adam)",
                name,
            )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        self._batches += 1
        if (self._batches - 1) % self.every_n_steps:
            return
        optimizer = trainer.optimizers[0]
        if not isinstance(optimizer, torch.optim.Adam):
            return
        for name, params in self._parts(pl_module).items():
            sizes = adam_step_sizes(optimizer, params)
            if sizes.numel() == 0:
                continue
            if name not in self._index:
                gen = torch.Generator().manual_seed(self.seed)
                count = min(self.sample, sizes.numel())
                self._index[name] = torch.randperm(sizes.numel(), generator=gen)[:count]
            picked = sizes[self._index[name].to(sizes.device)].double()
            values = torch.quantile(picked, torch.tensor(QUANTILES, dtype=torch.float64))
            for q, value in zip(QUANTILES, values.tolist(), strict=True):
                pl_module.log(f"adam/{name}_q{round(q * 100):02d}", value, on_step=True)
