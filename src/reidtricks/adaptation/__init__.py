"""Unsupervised domain adaptation by clustering pseudo-identities (`python -m reidtricks.adapt`)."""

from reidtricks.adaptation.clustering import (
    NOISE,
    SparseDistances,
    camera_spread,
    cluster_centroids,
    dbscan_labels,
    jaccard_distances,
    label_quality,
    purity,
)
from reidtricks.adaptation.settings import AdaptConfig
from reidtricks.adaptation.target import Target, dataset_target, folder_target

__all__ = [
    "NOISE",
    "AdaptConfig",
    "SparseDistances",
    "Target",
    "camera_spread",
    "cluster_centroids",
    "dataset_target",
    "dbscan_labels",
    "folder_target",
    "jaccard_distances",
    "label_quality",
    "purity",
]
