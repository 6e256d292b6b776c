"""ImageNet initialisation: the library's own download, or a local state dict file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reidtricks.cli_errors import error_summary

# ImageNet classifier heads, which a ReID backbone does not have; ignored in a weights file.
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.")
# Buffers that old checkpoints (e.g. torchvision's 2017 ResNet files) lack; the backbone keeps its own.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def offline_error(name: str, cause: BaseException) -> RuntimeError:
    """The one-line error for ImageNet weights that could not be fetched (no internet, bad cache)."""
    return RuntimeError(
        f"could not fetch ImageNet weights for {name} ({error_summary(cause)}); set "
        "model.pretrained_path=FILE (a local torchvision or timm state dict) or model.pretrained=false"
    )


def fetch(name: str, loader: Callable[[], Any]) -> Any:
    """Run the library's download (`loader`); any failure becomes `offline_error`."""
    try:
        return loader()
    except Exception as err:  # no internet, proxy, corrupt cache, hash mismatch, ...
        raise offline_error(name, err) from err


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: bare, or under "state_dict"/"model"; `module.` prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.pretrained_path={path}: no such file (expected a local torchvision or timm "
            "state dict, or set model.pretrained_path=null)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: object = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(
                f"model.pretrained_path={path}: not a weights-only torch file ({err})"
            ) from err
    if isinstance(state, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f"model.pretrained_path={path}: expected a state dict (weight names -> tensors)"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_pretrained_file(backbone: nn.Module, path: str | Path) -> None:
    """Copy a local state dict into `backbone`. Classifier keys and extra keys are ignored; every
    backbone key must be present with the backbone's shape (one-line error otherwise)."""
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(HEAD_PREFIXES)}
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIXES)]
    if missing:  # checked before shapes: a missing key means weights of another model
        key = missing[0]
        raise ValueError(
            f"model.pretrained_path={path}: backbone key {key} (expected shape "
            f"{tuple(expected[key].shape)}) is missing from the file, with {len(missing) - 1} "
            f"more ({len(expected) - len(missing)} of {len(expected)} present: another model?)"
        )
    for key, value in expected.items():
        if key in state and tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(
                f"model.pretrained_path={path}: key {key} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(value.shape)}"
            )
    backbone.load_state_dict({k: state.get(k, v) for k, v in expected.items()})
