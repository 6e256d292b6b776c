"""Keep losses in fp32 inside a mixed-precision step."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor


def autocast_off(tensor: Tensor) -> AbstractContextManager:
    """Disable autocast on `tensor`'s device, so a loss computed inside a mixed-precision step
    stays fp32 (autocast would run its matmuls in half precision)."""
    device = tensor.device.type
    if torch.amp.is_autocast_available(device):
        return torch.autocast(device, enabled=False)
    return nullcontext()
