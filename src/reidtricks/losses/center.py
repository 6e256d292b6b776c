"""Center loss (Wen et al. 2016), docs/METHOD.md trick 6: L_c = (1/B) sum_j |f_j - c_{y_j}|^2."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reidtricks.losses.precision import autocast_off


def center_loss(feats: Tensor, targets: Tensor, centers: Tensor) -> Tensor:
    """Mean over the batch of the squared distance of each feature to its identity's center (fp32)."""
    if feats.shape[1:] != centers.shape[1:]:
        raise ValueError(
            f"center loss: features of dim {tuple(feats.shape[1:])}, centers of dim "
            f"{tuple(centers.shape[1:])}"
        )
    with autocast_off(feats):
        diff = feats.float() - centers.float()[targets]
        return diff.pow(2).sum(dim=1).mean()


class CenterLoss(nn.Module):
    """Holds the learnable centers (num_classes x feat_dim, init randn as the authors' code);
    the training loop gives them their own optimiser."""

    def __init__(self, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, feats: Tensor, targets: Tensor) -> Tensor:
        return center_loss(feats, targets, self.centers)
