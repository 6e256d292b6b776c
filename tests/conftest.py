"""Shared fixtures: the `tiny` synthetic dataset (generated once per session) and one short
full-BoT training on it (its checkpoint, shared by the tests that only read a trained model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import compose_train, new_net, tiny_overrides

# One intra-op thread: the tests' tensors are small, and on cores shared with other jobs two
# threads are many times slower (thread hand-offs wait for a busy core).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A data folder holding the `tiny` synthetic dataset in the Market-1501 layout."""
    from reidtricks.data.datasets import SyntheticReID

    root = tmp_path_factory.mktemp("data")
    SyntheticReID(root, preset="tiny", seed=0).load()
    return root


@pytest.fixture(scope="session")
def trained_ckpt(tiny_data_dir, tmp_path_factory) -> Path:
    """Full BoT (BNNeck: after_bn + cosine) with flip at test time, 2 epochs on `tiny`."""
    from reidtricks.cli.train import train

    out = tmp_path_factory.mktemp("trained_run")
    cfg = compose_train(
        *tiny_overrides(tiny_data_dir, out),
        "+trick=center_loss",
        "eval.flip=true",
        "trainer.max_epochs=2",
        "trainer.check_val_every_n_epoch=2",
        "optim.warmup_epochs=1",
        "optim.lr=1e-3",
        "run_test=false",
    )
    train(cfg)
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory) -> Path:
    """A plain-data checkpoint of an untrained ResNet-18 (12 identities, the demo's 64x32 inputs),
    for commands that read a checkpoint without training one."""
    from omegaconf import OmegaConf

    cfg = compose_train("experiment=demo", "paths.output_dir=unused")
    net = new_net("resnet18", 12, last_stride=2, neck="none")
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    config = OmegaConf.to_container(cfg, resolve=True)
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "reidtricks": {"config": config, "stage": "baseline", "seed": 0, "num_classes": 12},
        },
        path,
    )
    return path
