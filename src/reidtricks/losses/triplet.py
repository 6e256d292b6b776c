"""Batch-hard triplet loss (Hermans et al.), as the BoT authors' code computes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from reidtricks.losses.precision import autocast_off


def euclidean_distance_matrix(x: Tensor, y: Tensor) -> Tensor:
    """sqrt(clamp(|x|^2 + |y|^2 - 2 x.y, min=1e-12)) between the rows of x and y, fp32 (docs/METHOD.md)."""
    with autocast_off(x):
        x, y = x.float(), y.float()
        dist = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1, keepdim=True).t() - 2.0 * x @ y.t()
        return dist.clamp(min=1e-12).sqrt()


def batch_hard_triplet_loss(
    feats: Tensor,
    targets: Tensor,
    margin: float,
    soft_margin: bool,
    normalize_features: bool,
) -> Tensor:
    """mean(relu(d_ap - d_an + margin)) over anchors, with each anchor's hardest positive (max
    distance to its id, itself included at ~1e-6) and hardest negative (min distance to other ids).

    soft_margin: mean(softplus(d_ap - d_an)), margin unused. An anchor without another image of its
    id uses d_ap = its self-distance; an anchor without negatives (one-id batch) contributes 0 to
    the mean (d_an = inf) and no gradient. normalize_features: L2-normalise first. fp32 result.
    """
    with autocast_off(feats):
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
