"""Pure loss functions of the BoT baseline (plus the center-loss module holding its centers)."""

from reidtricks.losses.center import CenterLoss, center_loss
from reidtricks.losses.cross_entropy import cross_entropy_loss
from reidtricks.losses.triplet import batch_hard_triplet_loss, euclidean_distance_matrix

__all__ = [
    "CenterLoss",
    "batch_hard_triplet_loss",
    "center_loss",
    "cross_entropy_loss",
    "euclidean_distance_matrix",
]
