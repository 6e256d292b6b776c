"""ImageNet initialisation: the library's own download, or a local state dict file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reidtricks.errors import InputError, MissingInputError, error_summary

# ImageNet classifier heads, which a ReID backbone does not have; ignored in a weights file.
HEAD_PREFIXES = ("fc.", "_fc.", "classifier.", "head.", "last_linear.")
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


KEY_MAPS = ("by_name", "by_order")


def checked_state_dict(state: object, source: str) -> dict[str, torch.Tensor]:
    """A state dict: bare, or under "state_dict"/"model"; `module.` prefixes removed."""
    if isinstance(state, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise InputError(f"{source}: expected a state dict (weight names -> tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pt/.pth (weights-only) or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"model.pretrained_path={path}: no such file (expected a local torchvision or timm "
            "state dict; `make weights` writes the ImageNet files of mobilenetv2 and "
            "efficientnet_lite0/1/2; or set model.pretrained_path=null)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: object = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise InputError(
                f"model.pretrained_path={path}: not a weights-only torch file ({error_summary(err)})"
            ) from err
    return checked_state_dict(state, f"model.pretrained_path={path}")


def map_keys_by_order(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """Rename a foreign layout's tensors to `expected`'s names by position.

    Accepted only when both hold the same number of tensors (after dropping classifier-head keys
    from `state`) and every shape matches in order; otherwise one line naming the first mismatch.
    """
    theirs = [(k, v) for k, v in state.items() if not k.startswith(HEAD_PREFIXES)]
    ours = list(expected.items())
    for i, ((our_key, our_value), (their_key, their_value)) in enumerate(
        zip(ours, theirs, strict=False)
    ):
        if tuple(our_value.shape) != tuple(their_value.shape):
            raise InputError(
                f"{source}: pretrained_key_map=by_order: tensor {i} {their_key} has shape "
                f"{tuple(their_value.shape)}, the backbone's {our_key} expects "
                f"{tuple(our_value.shape)}"
            )
    if len(theirs) != len(ours):
        raise InputError(
            f"{source}: pretrained_key_map=by_order: the file has {len(theirs)} tensors, the "
            f"backbone {len(ours)} (another model?)"
        )
    return {our_key: value for (our_key, _), (_, value) in zip(ours, theirs, strict=True)}


def load_pretrained_file(backbone: nn.Module, path: str | Path, key_map: str = "by_name") -> None:
    """Copy a local state dict into `backbone`. by_name: classifier keys and extra keys are
    ignored; every backbone key must be present with the backbone's shape. by_order: see
    `map_keys_by_order`. One-line errors otherwise."""
    if key_map not in KEY_MAPS:
        raise InputError(f"model.pretrained_key_map={key_map!r}: expected one of {KEY_MAPS}")
    expected = backbone.state_dict()
    state = read_state_dict(path)
    if key_map == "by_order":
        state = map_keys_by_order(state, expected, f"model.pretrained_path={path}")
    state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIXES)]
    if missing:  # checked before shapes: a missing key means weights of another model
        key = missing[0]
        raise InputError(
            f"model.pretrained_path={path}: backbone key {key} (expected shape "
            f"{tuple(expected[key].shape)}) is missing from the file, with {len(missing) - 1} "
            f"more ({len(expected) - len(missing)} of {len(expected)} present: another model? "
            "a file in another key layout loads with model.pretrained_key_map=by_order)"
        )
    for key, value in expected.items():
        if key in state and tuple(state[key].shape) != tuple(value.shape):
            raise InputError(
                f"model.pretrained_path={path}: key {key} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(value.shape)}"
            )
    backbone.load_state_dict({k: state.get(k, v) for k, v in expected.items()})
