"""Straightforward NumPy references for the evaluation code, shared by the tests and the bench.

`evaluate_per_query` ranks one query at a time with an argsort (as torchreid's Python evaluator
does); `dense_rerank` is Zhong et al.'s k-reciprocal re-ranking on full N x N matrices, in the
structure of the Bag-of-Tricks authors' code. Both are written from the definitions, independent
of `reidtricks.evaluation`. scripts/bench_eval.py imports this file from the tests folder.
"""

from __future__ import annotations

import numpy as np


def evaluate_per_query(
    dist: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_cams: np.ndarray,
    g_cams: np.ndarray,
    max_rank: int = 50,
    kind: str = "stable",
) -> tuple[np.ndarray, float, float, int]:
    """(CMC, mAP, mINP, valid queries) under the Market-1501 protocol, one query at a time.

    Per query, as torchreid's Python evaluator (vectorised): argsort the row (`kind="stable"`:
    ties by gallery index, the reference order; NumPy's default quicksort is the bench's timing
    baseline), drop the gallery images with the query's id and camera, then cumulative sums
    of the matches for CMC, precision at each match for AP, and the last match for INP.
    """
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(dist[i], kind=kind)
        remove = (g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i])
        matches = (g_pids[order][~remove] == q_pids[i]).astype(np.int32)
        if not matches.any():
            continue
        hits = matches.cumsum()
        last = np.flatnonzero(matches)[-1]
        inps.append(hits[last] / (last + 1.0))
        cmc = np.minimum(hits, 1)[:max_rank]
        cmcs.append(np.pad(cmc, (0, max_rank - len(cmc)), mode="edge"))
        precision = hits / np.arange(1, len(hits) + 1)
        aps.append((precision * matches).sum() / matches.sum())
    if not aps:
        raise ValueError("no valid query")
    return np.mean(cmcs, 0), float(np.mean(aps)), float(np.mean(inps)), len(aps)


def sqdist(x: np.ndarray, y: np.ndarray, dtype=np.float64) -> np.ndarray:
    """|x_i|^2 + |y_j|^2 - 2 x_i.y_j in `dtype` (float32: the authors' precision)."""
    x, y = x.astype(dtype), y.astype(dtype)
    out = x @ y.T
    out *= -2.0
    out += np.einsum("ij,ij->i", x, x)[:, None]
    out += np.einsum("ij,ij->i", y, y)[None, :]
    return out


def _reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """k-reciprocal neighbours of i: its k+1 nearest that have i among their k+1 nearest."""
    forward = rank[i, : k + 1]
    return forward[np.any(rank[forward, : k + 1] == i, axis=1)]


def dense_rerank(
    qf: np.ndarray,
    gf: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lam: float = 0.3,
    precise: bool = True,
) -> np.ndarray:
    """k-reciprocal re-ranked Q x G distances from dense N x N matrices (N = Q + G).

    precise: float64 throughout and a stable argsort (the tests' reference); False: the
    authors' choices, float32 distances, NumPy's default argsort, V and Jaccard in float16.
    """
    x = np.concatenate([qf, gf])
    n, nq = len(x), len(qf)
    dist = sqdist(x, x, np.float64 if precise else np.float32)
    dist /= dist.max(axis=0)  # the authors' column max, read transposed (symmetric matrix)
    dist = dist.T
    rank = np.argsort(dist, axis=1, kind="stable" if precise else None).astype(np.int32)
    v_dtype = np.float64 if precise else np.float16
    v = np.zeros((n, n), dtype=v_dtype)
    k_half = int(np.around(k1 / 2))
    for i in range(n):
        r = _reciprocal(rank, i, k1)
        parts = [r]
        for c in r:
            half = _reciprocal(rank, c, k_half)
            if len(np.intersect1d(half, r)) > 2 / 3 * len(half):
                parts.append(half)
        cols = np.unique(np.concatenate(parts))
        w = np.exp(-dist[i, cols])
        v[i, cols] = w / w.sum()
    original = np.array(dist[:nq, nq:])
    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = v[rank[i, :k2]].mean(axis=0)
        v = v_qe
    del rank, dist
    holders = [np.flatnonzero(v[:, j]) for j in range(n)]  # inverted index
    jaccard = np.zeros((nq, n - nq), dtype=v_dtype)
    for i in range(nq):
        shared = np.zeros(n, dtype=v_dtype)
        for j in np.flatnonzero(v[i]):
            rows = holders[j]
            shared[rows] += np.minimum(v[i, j], v[rows, j])
        jaccard[i] = (1 - shared / (2 - shared))[nq:]
    return jaccard * (1 - lam) + original * lam
