"""Batch-hard triplet loss (Hermans et al.), as the BoT authors' code computes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def euclidean_distance_matrix(x: Tensor, y: Tensor) -> Tensor:
    """sqrt(clamp(|x|^2 + |y|^2 - 2 x.y, min=1e-12)), in fp32 (PAPER.md)."""
    x, y = x.float(), y.float()
    dist = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1, keepdim=True).t() - 2.0 * x @ y.t()
    return dist.clamp(min=1e-12).sqrt()


def batch_hard_triplet_loss(
    feats: Tensor,
    targets: Tensor,
    margin: float = 0.3,
    soft_margin: bool = False,
    normalize_features: bool = False,
) -> Tensor:
    """mean(relu(d_ap - d_an + margin)) with the hardest positive and negative of each anchor.

    The anchor itself counts as a positive (distance ~1e-6), so an identity with one image in the
    batch still has a defined d_ap; an anchor with no negative (one-identity batch) contributes
    relu(d_ap - inf + margin) = 0. soft_margin: mean(softplus(d_ap - d_an)), margin unused.
    """
    feats = feats.float()
    if normalize_features:
        feats = F.normalize(feats, dim=1)
    dist = euclidean_distance_matrix(feats, feats)
    same = targets.view(-1, 1) == targets.view(1, -1)
    d_ap = dist.masked_fill(~same, float("-inf")).max(dim=1).values
    d_an = dist.masked_fill(same, float("inf")).min(dim=1).values
    if soft_margin:
        return F.softplus(d_ap - d_an).mean()
    return torch.relu(d_ap - d_an + margin).mean()
