"""Identity loss: cross-entropy with optional label smoothing (docs/METHOD.md trick 3)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from reidtricks.losses.precision import autocast_off


def cross_entropy_loss(logits: Tensor, targets: Tensor, label_smoothing: float) -> Tensor:
    """Mean CE against (1 - eps) * onehot + eps / N targets (N classes), computed in fp32.

    PyTorch's `label_smoothing` uses exactly these targets (the authors' CrossEntropyLabelSmooth).
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing={label_smoothing}: expected 0 <= eps < 1")
    with autocast_off(logits):
        return F.cross_entropy(logits.float(), targets.long(), label_smoothing=label_smoothing)
