"""Shared fixtures: the `tiny` synthetic dataset (generated once per session) and a train runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A data folder holding the `tiny` synthetic dataset in the Market-1501 layout."""
    from reidtricks.data.datasets import SyntheticReID

    root = tmp_path_factory.mktemp("data")
    SyntheticReID(root, preset="tiny", seed=0).load()
    return root


def tiny_overrides(data_dir: Path, output_dir: Path) -> list[str]:
    """Demo experiment shrunk to the tiny set: CPU, no workers, small batches, CSV logs only."""
    return [
        "experiment=demo",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={output_dir}",
        "data.train_sources.synthetic.preset=tiny",
        "data.sampler.p=4",
        "data.sampler.k=4",
        "data.loader.num_workers=0",
        "data.loader.persistent_workers=false",
        "data.loader.test_batch_size=64",
        "logger=csv",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
    ]


def compose_evaluate(ckpt: Path, output_dir: Path, *extra: str):
    """The `evaluate` config for a checkpoint, on CPU without a progress bar."""
    from hydra import compose, initialize_config_dir

    from reidtricks.cli.app import config_dir

    overrides = [f"ckpt={ckpt}", f"paths.output_dir={output_dir}", "trainer=cpu",
                 "+trainer.enable_progress_bar=false", *extra]  # fmt: skip
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("evaluate", overrides=overrides)


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory) -> Path:
    """A plain-data checkpoint of an untrained ResNet-18 (12 identities, the demo's 64x32 inputs),
    for commands that read a checkpoint without training one."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from reidtricks.cli.app import config_dir
    from reidtricks.models import build_reid_net

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=demo", "paths.output_dir=unused"])
    net = build_reid_net("resnet18", num_classes=12, last_stride=2, neck="none")
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
