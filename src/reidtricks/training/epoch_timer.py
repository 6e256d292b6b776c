"""Wall seconds of every training epoch (its batches and their loading, validation left out),
logged as time/train_epoch_s and kept in metrics.json, so runs compare in speed from their logs."""

from __future__ import annotations

import time

import pytorch_lightning as pl


class EpochTimer(pl.Callback):
    """Times each training epoch; `seconds` holds one entry per epoch run by this process."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start: float | None = None
        self._validation = 0.0  # seconds of validation inside the current epoch
        self._validation_start: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._validation = time.perf_counter(), 0.0

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._validation_start is not None:
            self._validation += time.perf_counter() - self._validation_start
            self._validation_start = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is None:
            return
        elapsed = time.perf_counter() - self._start - self._validation
        self.seconds.append(elapsed)
        # this process's time: every rank logging its own would ask for a cross-rank reduction
        pl_module.log(
            "time/train_epoch_s", elapsed, on_step=False, on_epoch=True, rank_zero_only=True
        )
