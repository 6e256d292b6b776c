"""Identity loss: cross-entropy with optional label smoothing (PAPER.md trick 3)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def cross_entropy_loss(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean CE against (1 - eps) * onehot + eps / N targets, computed in fp32.

    PyTorch's `label_smoothing` uses exactly these targets (the authors' CrossEntropyLabelSmooth).
    """
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
