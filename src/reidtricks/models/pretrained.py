"""ImageNet initialisation: the library's own download, or a local state dict file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

# Keys of ImageNet classifier heads, which a ReID backbone does not have.
_HEAD_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.")


def _unwrap(state: object, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(state, Mapping):
        for key in ("state_dict", "model"):
            if key in state and isinstance(state[key], Mapping):
                return state[key]
        return state
    raise ValueError(f"{path}: expected a state dict (a mapping of weight names to tensors)")


def load_pretrained_file(backbone: nn.Module, path: str | Path) -> None:
    """Copy a local torchvision/timm state dict into `backbone`; shapes and keys must match."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {path} do not exist (model.pretrained_path=FILE: a local "
            "torchvision or timm state dict)"
        )
    state = _unwrap(torch.load(path, map_location="cpu", weights_only=True), path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}
    expected = backbone.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise ValueError(
                f"{path}: weight {key} is missing (is it a state dict of this backbone?)"
            )
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(
                f"{path}: weight {key} has shape {tuple(state[key].shape)}, "
                f"the backbone expects {tuple(value.shape)}"
            )
    backbone.load_state_dict({k: state[k] for k in expected})


def offline_error(name: str, cause: Exception) -> RuntimeError:
    """The one-line error for a failed ImageNet download."""
    return RuntimeError(
        f"could not download ImageNet weights for {name} ({type(cause).__name__}); set "
        "model.pretrained_path=FILE (a local torchvision or timm state dict) or model.pretrained=false"
    )
