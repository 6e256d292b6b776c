"""Enumerating ragged ranges on the device without a Python loop (metrics and re-ranking)."""

from __future__ import annotations

import torch
from torch import Tensor


def ragged_arange(starts: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(owner, position) pairs enumerating starts[o] + 0..lengths[o]-1 for every owner o, owners
    in order: starts [5, 0], lengths [2, 3] -> owner [0, 0, 1, 1, 1], position [5, 6, 0, 1, 2]."""
    owner = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)
    first = torch.cumsum(lengths, 0) - lengths
    # index_select rather than advanced indexing: several times faster on CPU.
    offset = (starts - first).index_select(0, owner)
    return owner, offset + torch.arange(len(owner), device=lengths.device)
