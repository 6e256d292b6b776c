"""Rebuild a trained ReIDNet from a Lightning checkpoint (plain data, weights_only=True)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from reidtricks.errors import error_summary
from reidtricks.models import ReIDNet


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a reidtricks checkpoint safely; one-line errors for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (set ckpt=PATH to a .ckpt file)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, not a torch file, pickled objects
        raise ValueError(
            f"{path}: cannot be read as a weights-only torch checkpoint ({error_summary(err)})"
        ) from err
    if (
        not isinstance(checkpoint, dict)
        or "reidtricks" not in checkpoint
        or "state_dict" not in checkpoint
    ):
        raise ValueError(
            f"{path} is not a reidtricks training checkpoint "
            "(expected the keys 'state_dict' and 'reidtricks')"
        )
    return checkpoint


def build_net_from_checkpoint(checkpoint: dict[str, Any], source: str = "checkpoint") -> ReIDNet:
    """The ReIDNet the checkpoint was trained with, with its weights (no ImageNet download)."""
    info = checkpoint["reidtricks"]
    model_cfg = {**info["config"]["model"], "pretrained": False, "pretrained_path": None}
    net = instantiate(model_cfg)(num_classes=int(info["num_classes"]))
    state = {
        key.removeprefix("net."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("net.")
    }
    expected = net.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise ValueError(f"{source}: weight {key} is missing from the checkpoint")
        if state[key].shape != value.shape:
            raise ValueError(
                f"{source}: weight {key} has shape {tuple(state[key].shape)}, "
                f"the model expects {tuple(value.shape)}"
            )
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise ValueError(f"{source}: unexpected weights {unexpected[:3]} for this model")
    net.load_state_dict(state)
    return net
