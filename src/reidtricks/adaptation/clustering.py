"""Pseudo-identities from features: the k-reciprocal Jaccard distance (the re-ranking code's,
evaluation/rerank.py), DBSCAN on it, cluster centroids, and how well the clusters match known
identities (purity, NMI, ARI) and how they lie across cameras, as pure functions (docs/METHOD.md,
"Adapting to unlabelled images")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import csr_matrix
from torch import Tensor

from reidtricks.evaluation.rerank import jaccard_distance_pairs

NOISE = -1  # DBSCAN's label of an image in no cluster (left out of the round)


@dataclass(frozen=True)
class SparseDistances:
    """Distances of N items given as (rows, cols, values) pairs; every pair not listed is at
    `default` (here 1: no shared k-reciprocal neighbour)."""

    n: int
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    default: float = 1.0

    def dense(self) -> np.ndarray:
        """The N x N matrix (for small N: tests, plots)."""
        out = np.full((self.n, self.n), self.default, dtype=np.float64)
        out[self.rows, self.cols] = self.values
        return out


def jaccard_distances(
    feats: Tensor,
    k1: int,
    k2: int,
    threads: int | None = None,
    cams: Sequence[int] | None = None,
    same_camera_penalty: float = 0.0,
) -> SparseDistances:
    """The k-reciprocal Jaccard distance between every two L2-normalised features (cosine
    neighbourhoods, as SpCL / MMT cluster), memory-bounded as re-ranking is. With `cams` and a
    `same_camera_penalty` > 0, two images of one camera start `same_camera_penalty` further
    apart (squared distance), so that a person's views from other cameras can be neighbours."""
    penalty = None
    if same_camera_penalty > 0:
        if cams is None:
            raise ValueError("same_camera_penalty > 0 needs the camera ids (cams)")
        penalty = (torch.as_tensor(np.asarray(cams), dtype=torch.int64), same_camera_penalty)
    rows, cols, dist = jaccard_distance_pairs(
        F.normalize(feats.float(), dim=1), k1, k2, threads=threads, camera_penalty=penalty
    )
    return SparseDistances(
        len(feats), rows.cpu().numpy(), cols.cpu().numpy(), dist.cpu().double().numpy()
    )


def dbscan_labels(distances: SparseDistances, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN (scikit-learn's, metric precomputed) on sparse distances whose unlisted pairs lie
    beyond eps: a cluster id 0..C-1 per item (numbered in order of their first core item), or
    NOISE. A listed pair at exactly 0 still counts as a neighbour."""
    from sklearn.cluster import DBSCAN

    if not distances.default > eps:
        raise ValueError(f"eps={eps} must be below the unlisted distance {distances.default}")
    # Zeros are stored explicitly: a sparse precomputed graph treats a missing entry as "not a
    # neighbour" and a stored one (any value <= eps) as a neighbour.
    graph = csr_matrix(
        (distances.values, (distances.rows, distances.cols)), shape=(distances.n, distances.n)
    )
    model = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed")
    return model.fit_predict(graph).astype(np.int64)


def cluster_centroids(feats: Tensor, labels: Sequence[int] | np.ndarray) -> Tensor:
    """C x D mean feature of each cluster 0..C-1 (NOISE rows ignored)."""
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=feats.device)
    kept = labels_t >= 0
    num = int(labels_t.max()) + 1 if bool(kept.any()) else 0
    sums = torch.zeros(num, feats.shape[1], dtype=torch.float64, device=feats.device)
    sums.index_add_(0, labels_t[kept], feats[kept].double())
    counts = torch.bincount(labels_t[kept], minlength=num).clamp(min=1)
    return (sums / counts[:, None]).to(feats.dtype)


def purity(pseudo: Sequence[int] | np.ndarray, true: Sequence[int] | np.ndarray) -> float:
    """Fraction of the clustered items (pseudo != NOISE) whose true identity is the most common
    one of their cluster (NaN when none is clustered)."""
    pseudo, true = np.asarray(pseudo), np.asarray(true)
    kept = pseudo != NOISE
    if not kept.any():
        return float("nan")
    pairs = np.stack([pseudo[kept], true[kept]], axis=1)
    combos, counts = np.unique(pairs, axis=0, return_counts=True)
    best: dict[int, int] = {}
    for (cluster, _), count in zip(combos.tolist(), counts.tolist(), strict=True):
        best[cluster] = max(best.get(cluster, 0), count)
    return sum(best.values()) / int(kept.sum())


def label_quality(
    pseudo: Sequence[int] | np.ndarray, true: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """Purity, NMI (arithmetic normalisation) and ARI of the pseudo-labels against the true
    identities, over the clustered items only (the left-out ones do not train)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    pseudo, true = np.asarray(pseudo), np.asarray(true)
    if pseudo.shape != true.shape:
        raise ValueError(f"{pseudo.shape} pseudo-labels against {true.shape} identities")
    kept = pseudo != NOISE
    if not kept.any():
        return {"purity": float("nan"), "nmi": float("nan"), "ari": float("nan")}
    return {
        "purity": purity(pseudo, true),
        "nmi": float(normalized_mutual_info_score(true[kept], pseudo[kept])),
        "ari": float(adjusted_rand_score(true[kept], pseudo[kept])),
    }


def _cross_camera_pairs(groups: np.ndarray, cams: np.ndarray) -> int:
    """Pairs of items in one group (equal `groups` value) from two different cameras:
    per group (n^2 - sum over cameras of n_c^2) / 2."""
    if len(groups) == 0:
        return 0
    _, group_index = np.unique(groups, return_inverse=True)
    _, cam_index = np.unique(cams, return_inverse=True)
    per_group = np.bincount(group_index)
    group_cam = group_index * (cam_index.max() + 1) + cam_index  # one id per (group, camera)
    per_group_cam = np.unique(group_cam, return_counts=True)[1]
    return int(((per_group**2).sum() - (per_group_cam**2).sum()) // 2)


def camera_spread(
    pseudo: Sequence[int] | np.ndarray,
    cams: Sequence[int] | np.ndarray,
    true: Sequence[int] | np.ndarray | None = None,
) -> dict[str, float]:
    """How the clusters lie across cameras: `multi_camera_clusters`, the clusters holding images
    of two or more cameras; with the true identities, `cross_camera_together`, the share of
    same-person image pairs from two cameras that one cluster holds (NaN without such pairs).
    Clusters bound to one camera teach the network to tell a person's two views apart."""
    pseudo, cams = np.asarray(pseudo), np.asarray(cams)
    if pseudo.shape != cams.shape:
        raise ValueError(f"{pseudo.shape} pseudo-labels against {cams.shape} camera ids")
    kept = pseudo != NOISE
    multi = sum(len(np.unique(cams[pseudo == c])) > 1 for c in np.unique(pseudo[kept]))
    out: dict[str, float] = {"multi_camera_clusters": int(multi)}
    if true is not None:
        true = np.asarray(true)
        # Pairs are counted inside (identity, cluster) cells, from a cell id per item.
        _, person = np.unique(true, return_inverse=True)
        cell = person[kept] * (int(pseudo.max()) + 1) + pseudo[kept]
        possible = _cross_camera_pairs(person, cams)
        together = _cross_camera_pairs(cell, cams[kept])
        out["cross_camera_together"] = together / possible if possible else float("nan")
    return out
