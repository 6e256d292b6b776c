"""FeatureModule: runs a trained ReIDNet over a datamodule's test sets for an Evaluator (the
`evaluate` command's LightningModule: no losses, no optimiser)."""

from __future__ import annotations

import pytorch_lightning as pl
from torch import Tensor

from reidtricks.evaluation.evaluator import Evaluator
from reidtricks.models import ReIDNet, ReIDOutput


class FeatureModule(pl.LightningModule):
    """`trainer.test` extracts every test set once; the Evaluator then scores any setting."""

    def __init__(self, net: ReIDNet, evaluator: Evaluator) -> None:
        super().__init__()
        self.net = net
        self.evaluator = evaluator

    def forward(self, images: Tensor) -> ReIDOutput:
        return self.net(images)

    def on_test_epoch_start(self) -> None:
        self.evaluator.start(self.trainer.datamodule.test_sets, self.device)

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0):
        self.evaluator.collect(self, batch, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        # A debug run may limit the batches on one process; under DDP every image must be there.
        self.evaluator.finish(self.global_step, allow_partial=self.trainer.world_size == 1)
