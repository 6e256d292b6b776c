"""ReIDModule: the BoT training loop (ID + triplet + center losses) and query/gallery evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from reidtricks.errors import InputError
from reidtricks.evaluation.collector import FeatureCollector, TestFeatures
from reidtricks.evaluation.metrics import EvalResult
from reidtricks.evaluation.retrieval import evaluate_features
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.losses import CenterLoss, batch_hard_triplet_loss, cross_entropy_loss
from reidtricks.models import ReIDNet, ReIDOutput
from reidtricks.training.optim import build_lr_scheduler, build_optimizer
from reidtricks.training.rng import collect_rng_states, restore_rng_states
from reidtricks.training.settings import LossConfig, OptimConfig


class ReIDModule(pl.LightningModule):
    """Trains a ReIDNet with the combined BoT loss; evaluates every test set of the datamodule.

    Manual optimisation, because the center-loss centers have their own SGD that must see the
    *unweighted* center-loss gradient while the network sees the weighted total (docs/METHOD.md, trick 6).
    """

    def __init__(
        self,
        net: ReIDNet,
        num_classes: int,
        loss: LossConfig | None = None,
        optim: OptimConfig | None = None,
        eval: EvalConfig | None = None,
        eval_variants: Mapping[str, EvalConfig] | None = None,
        channels_last: bool = False,
        run_info: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net = net
        self.num_classes = num_classes
        # Typed settings, checked when they were built; loss and optim are needed only to train.
        self.loss_cfg = loss
        self.optim_cfg = optim
        self.eval_cfg = eval if eval is not None else EvalConfig()
        self.channels_last = channels_last
        self.run_info = dict(run_info or {})
        self.center_weight = loss.center_weight if loss is not None else 0.0
        self.center_loss: CenterLoss | None = None
        self.center_optimizer: torch.optim.Optimizer | None = None
        if self.center_weight > 0:
            self.center_loss = CenterLoss(num_classes, net.feat_dim)
            self.center_optimizer = torch.optim.SGD(
                self.center_loss.parameters(), lr=loss.center_lr
            )
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.eval_variants = dict(eval_variants or {})
        self._collectors: list[FeatureCollector] = []
        self.test_features: dict[str, TestFeatures] = {}  # last evaluation pass, per test set
        self.features_step: int | None = None  # the global step those features come from

    # -- training ------------------------------------------------------------------------------
    def forward(self, images: Tensor) -> ReIDOutput:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def loss_terms(self, out: ReIDOutput, pids: Tensor) -> dict[str, Tensor]:
        """Every weighted term of L = L_id + L_triplet + beta * L_center, and their sum (fp32)."""
        cfg = self.loss_cfg
        if cfg is None:
            raise InputError("ReIDModule was built without loss settings: it can evaluate only")
        feats = out.feat_before_bn.float()
        terms = {"id": cross_entropy_loss(out.logits, pids, label_smoothing=cfg.label_smoothing)}
        total = cfg.id_weight * terms["id"]
        if cfg.triplet_weight > 0:
            terms["triplet"] = batch_hard_triplet_loss(
                feats,
                pids,
                margin=cfg.triplet_margin,
                soft_margin=cfg.triplet_soft_margin,
                normalize_features=cfg.triplet_normalize,
            )
            total = total + cfg.triplet_weight * terms["triplet"]
        if self.center_loss is not None:
            terms["center"] = self.center_loss(feats, pids)
            total = total + self.center_weight * terms["center"]
        terms["total"] = total
        return terms

    def _loss_scale(self) -> float:
        """The fp16 gradient scaler's current scale (1 without one), to unscale the centers' grads."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        return float(scaler.get_scale()) if scaler is not None else 1.0

    def _step_centers(self) -> None:
        # The backward pass gave beta * dL_c/dc (times the fp16 loss scale); the centers' SGD
        # steps with the unweighted gradient dL_c/dc, as the authors' code does.
        divisor = self.center_weight * self._loss_scale()
        grads = [p.grad for p in self.center_loss.parameters() if p.grad is not None]
        for grad in grads:
            grad.div_(divisor)
        if all(bool(torch.isfinite(g).all()) for g in grads):
            self.center_optimizer.step()

    def _check_finite(self, terms: dict[str, Tensor], optimizer: Any) -> None:
        # One device sync per step: cheap next to the step, and it stops a diverged run at once
        # instead of training (and checkpointing) NaN weights until the first validation.
        if bool(torch.isfinite(terms["total"]).item()):
            return
        bad = next(n for n, v in terms.items() if not bool(torch.isfinite(v).all()))
        raise InputError(
            f"training diverged: loss_{bad}={float(terms[bad]):g} at step {self.global_step} "
            f"(epoch {self.current_epoch}) with lr={optimizer.param_groups[0]['lr']:g}; lower "
            "optim.lr or set optim.gradient_clip_val"
        )

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        images, pids = batch[0], batch[1]
        out = self(images)
        terms = self.loss_terms(out, pids)
        optimizer = self.optimizers()
        self._check_finite(terms, optimizer)
        optimizer.zero_grad()
        if self.center_optimizer is not None:
            self.center_optimizer.zero_grad()
        self.manual_backward(terms["total"])
        if self.center_optimizer is not None:
            self._step_centers()
        clip = self.optim_cfg.gradient_clip_val
        if clip:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        optimizer.step()

        batch_size = images.shape[0]
        for name, value in terms.items():
            self.log(
                f"train/loss_{name}",
                value.detach(),
                prog_bar=name == "total",
                batch_size=batch_size,
            )
        accuracy = (out.logits.detach().argmax(dim=1) == pids).float().mean()
        self.log("train/id_acc", accuracy, prog_bar=True, batch_size=batch_size)
        self.log("train/lr", optimizer.param_groups[0]["lr"], batch_size=batch_size)
        return terms["total"].detach()

    def on_train_epoch_end(self) -> None:
        self.lr_schedulers().step()

    def configure_optimizers(self) -> dict[str, Any]:
        if self.optim_cfg is None:
            raise InputError("ReIDModule was built without optim settings: it can evaluate only")
        optimizer = build_optimizer(self.net, self.optim_cfg)
        scheduler = build_lr_scheduler(optimizer, self.optim_cfg)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def extract_features(self, images: Tensor) -> Tensor:
        """Test-time feature (before/after BN, optionally averaged with the flipped image), fp32."""
        feature = self.eval_cfg.feature
        feats = self(images).feature(feature).float()
        if self.eval_cfg.flip:
            feats = (feats + self(images.flip(dims=[3])).feature(feature).float()) / 2
        return feats

    def _eval_start(self) -> None:
        if self.trainer.world_size > 1:
            # Every rank must extract with rank 0's BN running statistics, which is what the
            # checkpoint holds (without sync_batchnorm each rank keeps its own during training).
            for buffer in self.net.buffers():
                torch.distributed.broadcast(buffer, src=0)
        with_flip = any(cfg.flip for cfg in self.all_eval_cfgs().values())
        self._collectors = [
            FeatureCollector(with_flip).to(self.device) for _ in self.trainer.datamodule.test_sets
        ]

    @torch.no_grad()
    def _eval_step(self, batch: tuple[Tensor, ...], dataloader_idx: int) -> None:
        # f_t and f_i (and their mirrors when a variant flips) in one pass: every test-time
        # variant is scored from these, without running the network again.
        images, pids, camids, indices = batch
        collector = self._collectors[dataloader_idx]
        out = self(images)
        feats = {"before_bn": out.feat_before_bn, "after_bn": out.feat_after_bn}
        if collector.with_flip:
            flipped = self(images.flip(dims=[3]))
            feats |= {
                "before_bn_flip": flipped.feat_before_bn,
                "after_bn_flip": flipped.feat_after_bn,
            }
        collector.update(indices, pids, camids, **feats)

    def _eval_end(self, prefix: str) -> None:
        test_sets = self.trainer.datamodule.test_sets
        self.test_features = {}
        for test_set, collector in zip(test_sets, self._collectors, strict=True):
            if collector.update_count == 0:  # e.g. limit_val_batches=0
                continue
            # One process may see part of a test set (a debug run limiting the batches); under DDP
            # every image must be there.
            self.test_features[test_set.name] = collector.test_features(
                test_set.num_query, len(test_set.items), allow_partial=self.trainer.world_size == 1
            )
        self.features_step = self.global_step
        results = self.evaluate_cached(self.eval_cfg)
        for test_set in test_sets:
            if test_set.name not in results:
                continue
            metrics = results[test_set.name][0].as_dict()
            first = test_set is test_sets[0]
            for key in EvalResult.KEYS:
                value = float(metrics[key])
                self.log(f"{prefix}/{test_set.name}/{key}", value, sync_dist=False)
                if first:  # the first test set drives checkpointing and the progress bar
                    self.log(f"{prefix}/{key}", value, prog_bar=key in ("rank1", "mAP"))
        self._collectors = []

    def all_eval_cfgs(self) -> dict[str, EvalConfig]:
        """The default test-time settings ("" key) and every named variant, merged over them."""
        return {"": self.eval_cfg, **self.eval_variants}

    def evaluate_cached(self, eval_cfg: EvalConfig) -> dict[str, tuple[EvalResult, Tensor]]:
        """(result, Q x G distances) per test set for these settings, from the features of the
        last evaluation pass (`features_step` tells which training step they come from)."""
        return {
            name: evaluate_features(
                gathered.select(eval_cfg),
                gathered.pids,
                gathered.camids,
                gathered.num_query,
                eval_cfg,
            )
            for name, gathered in self.test_features.items()
        }

    def on_validation_epoch_start(self) -> None:
        self._eval_start()

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0):
        self._eval_step(batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start()

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0):
        self._eval_step(batch, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    # -- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain data only, so the file loads with torch.load(weights_only=True).
        checkpoint["reidtricks"] = {**self.run_info, "num_classes": self.num_classes}
        checkpoint["rng_states"] = collect_rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A resumed run draws the same augmentations and worker seeds as an uninterrupted one.
        if "rng_states" in checkpoint:
            restore_rng_states(checkpoint["rng_states"])
