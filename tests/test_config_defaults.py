"""The composed, resolved training config of every trick stage and of the demo / cuhk03_cpu
experiments, against literal values captured from the configs before the typed settings became
the groups' base: moving the defaults into the dataclasses changed no value."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

from helpers import compose_train

PATHS = ["paths.data_dir=/data", "paths.log_dir=/logs", "paths.weights_dir=/weights",
         "paths.output_dir=/out"]  # fmt: skip
ABSENT = "<absent>"
# The standard baseline (no trick, no experiment), flattened to dotted keys.
BASELINE: dict[str, Any] = {
    "callbacks.best._target_": "pytorch_lightning.callbacks.ModelCheckpoint",
    "callbacks.best.auto_insert_metric_name": False,
    "callbacks.best.dirpath": "/out/checkpoints",
    "callbacks.best.filename": "best-epoch{epoch:03d}-mAP{val/mAP:.4f}",
    "callbacks.best.mode": "max",
    "callbacks.best.monitor": "val/mAP",
    "callbacks.best.save_top_k": 1,
    "callbacks.last._target_": "reidtricks.training.run_safety.LastCheckpoint",
    "callbacks.last.dirpath": "/out/checkpoints",
    "callbacks.last.every_n_epochs": 1,
    "cell": "baseline",
    "channels_last": False,
    "ckpt_path": None,
    "data._target_": "reidtricks.data.datamodule.ReIDDataModule",
    "data.loader.num_workers": 4,
    "data.loader.persistent_workers": True,
    "data.loader.pin_memory": True,
    "data.loader.test_batch_size": 256,
    "data.sampler.k": 4,
    "data.sampler.p": 16,
    "data.seed": 0,
    "data.test_sources.market1501._target_": "reidtricks.data.datasets.Market1501",
    "data.test_sources.market1501.root": "/data",
    "data.train_sources.market1501._target_": "reidtricks.data.datasets.Market1501",
    "data.train_sources.market1501.root": "/data",
    "data.transform.erasing_area": [0.02, 0.4],
    "data.transform.erasing_aspect": [0.3, 3.33],
    "data.transform.erasing_fill": "imagenet_mean",
    "data.transform.erasing_prob": 0.0,
    "data.transform.flip_prob": 0.5,
    "data.transform.height": 256,
    "data.transform.pad": 10,
    "data.transform.width": 128,
    "data.verify_images": False,
    "eval.feature": "before_bn",
    "eval.flip": False,
    "eval.k1": 20,
    "eval.k2": 6,
    "eval.lambda_value": 0.3,
    "eval.max_rank": 50,
    "eval.metric": "euclidean",
    "eval.protocol": "market",
    "eval.rerank": False,
    "eval_variants": {},
    "logger.csv._target_": "pytorch_lightning.loggers.CSVLogger",
    "logger.csv.name": "csv",
    "logger.csv.save_dir": "/out",
    "logger.tensorboard._target_": "pytorch_lightning.loggers.TensorBoardLogger",
    "logger.tensorboard.name": "tensorboard",
    "logger.tensorboard.save_dir": "/out",
    "loss.center_lr": 0.5,
    "loss.center_weight": 0.0,
    "loss.id_weight": 1.0,
    "loss.label_smoothing": 0.0,
    "loss.triplet_margin": 0.3,
    "loss.triplet_normalize": False,
    "loss.triplet_soft_margin": False,
    "loss.triplet_weight": 1.0,
    "model._partial_": True,
    "model._target_": "reidtricks.models.build_reid_net",
    "model.backbone": "resnet50",
    "model.last_stride": 2,
    "model.neck": "none",
    "model.pretrained": True,
    "model.pretrained_key_map": "by_name",
    "model.pretrained_path": None,
    "optim.bias_lr_factor": 1.0,
    "optim.gamma": 0.1,
    "optim.gradient_clip_val": None,
    "optim.lr": 0.00035,
    "optim.milestones": [40, 70],
    "optim.optimizer._partial_": True,
    "optim.optimizer._target_": "torch.optim.Adam",
    "optim.warmup": False,
    "optim.warmup_epochs": 10,
    "optim.warmup_start_factor": 0.01,
    "optim.weight_decay": 0.0005,
    "optim.weight_decay_bias": 0.0005,
    "paths.data_dir": "/data",
    "paths.log_dir": "/logs",
    "paths.output_dir": "/out",
    "paths.weights_dir": "/weights",
    "run_test": True,
    "seed": 0,
    "stage": "baseline",
    "task_name": "train",
    "threads": None,
    "trainer._target_": "pytorch_lightning.Trainer",
    "trainer.accelerator": "auto",
    "trainer.benchmark": False,
    "trainer.check_val_every_n_epoch": 40,
    "trainer.default_root_dir": "/out",
    "trainer.deterministic": False,
    "trainer.devices": 1,
    "trainer.log_every_n_steps": 20,
    "trainer.max_epochs": 120,
    "trainer.num_sanity_val_steps": 0,
    "trainer.precision": "32-true",
    "trainer.sync_batchnorm": False,
    "trainer.use_distributed_sampler": False,
}
# Keys the typed settings added: the normalisation the transforms used implicitly before.
ADDED = {"data.transform.mean": [0.485, 0.456, 0.406], "data.transform.std": [0.229, 0.224, 0.225]}
# Every other case as its difference from the baseline (ABSENT: a key the case does not have).
DIFFS: dict[str, dict[str, Any]] = {
    "+trick=baseline": {},
    "+trick=warmup": {"stage": "warmup", "cell": "warmup", "optim.warmup": True},
    "+trick=rea": {
        "stage": "rea",
        "cell": "rea",
        "data.transform.erasing_prob": 0.5,
        "optim.warmup": True,
    },
    "+trick=label_smooth": {
        "stage": "label_smooth",
        "cell": "label_smooth",
        "data.transform.erasing_prob": 0.5,
        "loss.label_smoothing": 0.1,
        "optim.warmup": True,
    },
    "+trick=last_stride": {
        "stage": "last_stride",
        "cell": "last_stride",
        "data.transform.erasing_prob": 0.5,
        "model.last_stride": 1,
        "loss.label_smoothing": 0.1,
        "optim.warmup": True,
    },
    "+trick=bnneck": {
        "stage": "bnneck",
        "cell": "bnneck",
        "data.transform.erasing_prob": 0.5,
        "model.last_stride": 1,
        "model.neck": "bnneck",
        "loss.label_smoothing": 0.1,
        "optim.warmup": True,
        "eval.feature": "after_bn",
        "eval.metric": "cosine",
    },
    "+trick=center_loss": {
        "stage": "center_loss",
        "cell": "center_loss",
        "data.transform.erasing_prob": 0.5,
        "model.last_stride": 1,
        "model.neck": "bnneck",
        "loss.label_smoothing": 0.1,
        "loss.center_weight": 0.0005,
        "optim.warmup": True,
        "eval.feature": "after_bn",
        "eval.metric": "cosine",
    },
    "+trick=rerank": {
        "stage": "rerank",
        "cell": "rerank",
        "data.transform.erasing_prob": 0.5,
        "model.last_stride": 1,
        "model.neck": "bnneck",
        "loss.label_smoothing": 0.1,
        "loss.center_weight": 0.0005,
        "optim.warmup": True,
        "eval.feature": "after_bn",
        "eval.metric": "cosine",
        "eval.rerank": True,
    },
    "experiment=demo": {
        "task_name": "demo",
        "data.sampler.p": 8,
        "data.transform.height": 64,
        "data.transform.width": 32,
        "data.transform.pad": 3,
        "data.loader.num_workers": 2,
        "data.loader.pin_memory": False,
        "data.loader.test_batch_size": 128,
        "data.train_sources.synthetic._target_": "reidtricks.data.datasets.SyntheticReID",
        "data.train_sources.synthetic.root": "/data",
        "data.train_sources.synthetic.preset": "small",
        "data.train_sources.synthetic.seed": 0,
        "data.test_sources.synthetic._target_": "reidtricks.data.datasets.SyntheticReID",
        "data.test_sources.synthetic.root": "/data",
        "data.test_sources.synthetic.preset": "small",
        "data.test_sources.synthetic.seed": 0,
        "model.backbone": "resnet18",
        "model.pretrained": False,
        "optim.milestones": [10, 14],
        "optim.warmup_epochs": 3,
        "trainer.accelerator": "cpu",
        "trainer.max_epochs": 16,
        "trainer.check_val_every_n_epoch": 8,
        "trainer.log_every_n_steps": 5,
        "data.train_sources.market1501._target_": "<absent>",
        "data.train_sources.market1501.root": "<absent>",
        "data.test_sources.market1501._target_": "<absent>",
        "data.test_sources.market1501.root": "<absent>",
    },
    "experiment=demo +trick=center_loss": {
        "task_name": "demo",
        "stage": "center_loss",
        "cell": "center_loss",
        "data.sampler.p": 8,
        "data.transform.height": 64,
        "data.transform.width": 32,
        "data.transform.pad": 3,
        "data.transform.erasing_prob": 0.5,
        "data.loader.num_workers": 2,
        "data.loader.pin_memory": False,
        "data.loader.test_batch_size": 128,
        "data.train_sources.synthetic._target_": "reidtricks.data.datasets.SyntheticReID",
        "data.train_sources.synthetic.root": "/data",
        "data.train_sources.synthetic.preset": "small",
        "data.train_sources.synthetic.seed": 0,
        "data.test_sources.synthetic._target_": "reidtricks.data.datasets.SyntheticReID",
        "data.test_sources.synthetic.root": "/data",
        "data.test_sources.synthetic.preset": "small",
        "data.test_sources.synthetic.seed": 0,
        "model.backbone": "resnet18",
        "model.last_stride": 1,
        "model.neck": "bnneck",
        "model.pretrained": False,
        "loss.label_smoothing": 0.1,
        "loss.center_weight": 0.0005,
        "optim.milestones": [10, 14],
        "optim.warmup": True,
        "optim.warmup_epochs": 3,
        "eval.feature": "after_bn",
        "eval.metric": "cosine",
        "trainer.accelerator": "cpu",
        "trainer.max_epochs": 16,
        "trainer.check_val_every_n_epoch": 8,
        "trainer.log_every_n_steps": 5,
        "data.train_sources.market1501._target_": "<absent>",
        "data.train_sources.market1501.root": "<absent>",
        "data.test_sources.market1501._target_": "<absent>",
        "data.test_sources.market1501.root": "<absent>",
    },
    "experiment=cuhk03_cpu": {
        "task_name": "cuhk03_cpu",
        "channels_last": True,
        "data.transform.height": 128,
        "data.transform.width": 64,
        "data.transform.pad": 5,
        "data.loader.num_workers": 1,
        "data.loader.pin_memory": False,
        "data.loader.test_batch_size": 128,
        "data.train_sources.cuhk03._target_": "reidtricks.data.datasets.CUHK03NP",
        "data.train_sources.cuhk03.root": "/data",
        "data.train_sources.cuhk03.variant": "labeled",
        "data.test_sources.cuhk03._target_": "reidtricks.data.datasets.CUHK03NP",
        "data.test_sources.cuhk03.root": "/data",
        "data.test_sources.cuhk03.variant": "labeled",
        "model.backbone": "timm:mobilenetv2_100",
        "model.pretrained_path": "/weights/mobilenetv2_100.pt",
        "optim.milestones": [4, 7],
        "optim.warmup_epochs": 2,
        "trainer.accelerator": "cpu",
        "trainer.max_epochs": 12,
        "trainer.check_val_every_n_epoch": 12,
        "trainer.log_every_n_steps": 10,
        "data.train_sources.market1501._target_": "<absent>",
        "data.train_sources.market1501.root": "<absent>",
        "data.test_sources.market1501._target_": "<absent>",
        "data.test_sources.market1501.root": "<absent>",
    },
    "experiment=cuhk03_cpu +trick=center_loss": {
        "task_name": "cuhk03_cpu",
        "channels_last": True,
        "stage": "center_loss",
        "cell": "center_loss",
        "data.transform.height": 128,
        "data.transform.width": 64,
        "data.transform.pad": 5,
        "data.transform.erasing_prob": 0.5,
        "data.loader.num_workers": 1,
        "data.loader.pin_memory": False,
        "data.loader.test_batch_size": 128,
        "data.train_sources.cuhk03._target_": "reidtricks.data.datasets.CUHK03NP",
        "data.train_sources.cuhk03.root": "/data",
        "data.train_sources.cuhk03.variant": "labeled",
        "data.test_sources.cuhk03._target_": "reidtricks.data.datasets.CUHK03NP",
        "data.test_sources.cuhk03.root": "/data",
        "data.test_sources.cuhk03.variant": "labeled",
        "model.backbone": "timm:mobilenetv2_100",
        "model.last_stride": 1,
        "model.neck": "bnneck",
        "model.pretrained_path": "/weights/mobilenetv2_100.pt",
        "loss.label_smoothing": 0.1,
        "loss.center_weight": 0.0005,
        "optim.milestones": [4, 7],
        "optim.warmup": True,
        "optim.warmup_epochs": 2,
        "eval.feature": "after_bn",
        "eval.metric": "cosine",
        "trainer.accelerator": "cpu",
        "trainer.max_epochs": 12,
        "trainer.check_val_every_n_epoch": 12,
        "trainer.log_every_n_steps": 10,
        "data.train_sources.market1501._target_": "<absent>",
        "data.train_sources.market1501.root": "<absent>",
        "data.test_sources.market1501._target_": "<absent>",
        "data.test_sources.market1501.root": "<absent>",
    },
}


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value (lists and empty mappings are leaves)."""
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def composed(*overrides: str) -> dict[str, Any]:
    """The resolved config, with the paths set last (as command-line overrides would set them)."""
    cfg = compose_train(*overrides)
    for item in PATHS:
        OmegaConf.update(cfg, *item.split("=", 1))
    return flatten(OmegaConf.to_container(cfg, resolve=True))


# Keys added since (random-split trials, warmup per step, the epoch timer, the classifier LR
# factor) and the split and combineall every dataset config names (fixed split 0, not combined)
# for each source.
ADDED_ELSEWHERE = {
    "data.test_trials": None,
    "optim.warmup_per_step": False,
    "optim.classifier_lr_factor": 1.0,
    "data.transform.color_jitter": 0.0,
    "data.transform.grayscale_prob": 0.0,
    "data.transform.auto_augment": "none",
    "data.test_on_trained_ids": False,
    "data.sampler.source_balance": "none",
    "model.ibn": "none",
    "model.mixstyle.p": 0.0,
    "model.mixstyle.alpha": 0.1,
    "model.mixstyle.layers": ["layer1", "layer2"],
    "model.pooling": "avg",
    "callbacks.epoch_timer._target_": "reidtricks.training.epoch_timer.EpochTimer",
}
SOURCE_KEYS = {"split": 0, "combineall": False}


def expected(case: str) -> dict[str, Any]:
    values = {**BASELINE, **ADDED, **ADDED_ELSEWHERE, **DIFFS.get(case, {})}
    values = {k: v for k, v in values.items() if v != ABSENT}
    sources = [
        k.removesuffix("._target_")
        for k in values
        if k.startswith("data.")
        and k.split(".")[1] in ("train_sources", "test_sources")
        and k.endswith("._target_")
    ]
    return {**values, **{f"{s}.{key}": v for s in sources for key, v in SOURCE_KEYS.items()}}


def test_the_baseline_composes_the_values_it_composed_before(monkeypatch):
    monkeypatch.delenv("REIDTRICKS_DATA_DIR", raising=False)
    assert composed() == expected("")


@pytest.mark.parametrize("case", list(DIFFS))
def test_every_stage_and_experiment_composes_the_values_it_composed_before(case, monkeypatch):
    monkeypatch.delenv("REIDTRICKS_DATA_DIR", raising=False)
    assert composed(*case.split()) == expected(case)
